// A compatibility matrix as the user wrote it (matrices/*.toml): axes,
// include/exclude rules, targets, policy, registry, tags, bases, runners.
// This room checks structure and types only; whether a version exists is
// the plan's question, answered against the catalog with the locations
// kept here.
#pragma once
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/diag.h"

namespace kiln::matrix {

// The axes in the order combinations are expanded and ids are written.
inline constexpr const char* kAxes[] = {"pytorch", "cuda", "cudnn", "os", "flavor", "python", "platform"};

// The platform axis speaks the catalog's words, "x86_64" and "aarch64"; a
// matrix may also write Docker's ("linux/amd64", "linux/arm64", "amd64",
// "arm64"), mapped here once. nullopt for anything else.
std::optional<std::string> platform_word(std::string_view text);
// The other way, at the engine and registry edge: "aarch64" -> "linux/arm64".
std::string oci_platform(std::string_view platform);

struct Value {
  std::string text;
  Location where;
};

struct Axis {
  std::string name;
  std::vector<Value> values;
};

// One [[include]] or [[exclude]] entry: axis -> value, matched as written
// ("2.6" matches the combination whose pytorch axis value is "2.6").
struct Rule {
  std::map<std::string, Value> values;
  std::string reason;
  Location where;
  size_t index = 0;  // 1-based position among its kind, for messages
};

// What must pass before a combination is tagged. [[policy.override]]
// entries (matched like [[exclude]]) give some combinations their own
// checks, e.g. devel images: static only.
struct PolicyOverride {
  std::map<std::string, Value> match;  // axis -> value
  std::vector<std::string> verify;
  std::vector<std::string> gpu_classes;
  Location where;
};

struct Policy {
  std::vector<std::string> verify{"static"};  // "static", "gpu"
  std::vector<std::string> gpu_classes;       // "sm_90"
  std::vector<PolicyOverride> overrides;
  // How targets decide validity: "all" (every target must run), "any"
  // (at least one), "report" (never exclude; only report per target).
  std::string targets = "all";
  // The gpu check's coverage beyond classes: every class must pass with each
  // GPU count (2 for DDP) and on each driver branch (the oldest and the
  // newest supported: "535", "580"). Empty: any count, any driver.
  std::vector<int> gpu_counts;
  std::vector<std::string> driver_branches;
  // "refuse": promote never moves an existing tag to a rebuild whose
  // packages differ from the image the tag names now (a drifted rebuild),
  // --force or not; an image that cannot be read counts as drifted (fail
  // closed). "allow" (default): no such check. docs/sbom.md, "Drift".
  std::string drift = "allow";
};

struct Registry {
  std::string url;         // "127.0.0.1:5000"; may be left to kiln's config file
  std::string repository;  // "kiln/pytorch"
  bool insecure = false;   // plain HTTP (a local registry)
  // A docker-credential-NAME helper kiln asks for this registry's
  // credentials before the Docker config ("pass", as in Docker's
  // credHelpers); empty: the Docker config alone. Never a credential.
  std::string credential_helper;
  Location where;                        // the [registry] table; empty file when absent
  std::map<std::string, Location> keys;  // each key the file wrote, where (config merge, `kiln config`)
};

struct BaseOverride {
  std::string os, cuda, flavor;  // empty = any
  std::string platform;          // "x86_64" | "aarch64"; empty = any
  std::string image;
  Location where;
};

// How a runner builds: the Engine API, or BuildKit through `docker buildx`.
enum class Backend { engine, buildx };
// How a runner gives a container its GPUs: none, the NVIDIA runtime's
// device request, CDI names, or device nodes plus the driver's libraries;
// slurm: the smoke run is a Slurm job that asks the scheduler for GPUs.
enum class GpuMode { none, nvidia, cdi, devices, slurm };
// The words the matrix, the ledger and JSON use; parse: nullopt for others.
const char* to_string(Backend b);
const char* to_string(GpuMode g);
std::optional<Backend> parse_backend(std::string_view word);
std::optional<GpuMode> parse_gpu_mode(std::string_view word);

struct Runner {
  std::string name;
  std::string engine;   // "unix:///var/run/docker.sock", "tcp://HOST:2376", "ssh://USER@HOST"
  // A tcp:// engine's TLS, as Docker's DOCKER_TLS_VERIFY and DOCKER_CERT_PATH
  // (ca.pem, cert.pem, key.pem), or each file; paths absolute (relative to
  // the file that wrote them). Unset: the environment's, as `docker -H`.
  std::optional<bool> tls_verify;
  std::string cert_path, ca, cert, key;
  Backend backend = Backend::engine;
  // backend = "buildx": the buildx builder to use (`docker buildx ls`), any
  // driver; "" the engine's own (buildx's "default"). A builder that is not
  // this engine pushes its images to the staging registry ([registry]).
  std::string builder;
  GpuMode gpu = GpuMode::none;
  std::vector<std::string> gpu_classes;
  // gpu = "devices": the device nodes to pass in and the host directory of
  // the driver's libraries (mounted read-only, put on LD_LIBRARY_PATH).
  std::vector<std::string> devices;
  std::string driver_libs;
  // The smoke container's /dev/shm (bytes; 0: kiln's default, 1 GiB) and
  // IPC namespace ("" engine default, "private", "shareable", "host", "none"):
  // NCCL's shared-memory transport and DataLoader workers live in /dev/shm.
  std::int64_t shm_size = 0;
  std::string ipc;
  // For building (docs/build.md, "Several engines"): at most `jobs` builds
  // at a time on this engine (0: only -j limits it); the platforms it builds
  // ("linux/amd64", "linux/arm64"; empty: the engine's own, from /version);
  // its labels, matched against the matrix's [engine_labels].
  int jobs = 0;
  std::vector<std::string> platforms;
  std::vector<std::string> labels;
  // GPUs a scheduled unit asks for (Slurm --gres, a Job's nvidia.com/gpu,
  // the unit's --gpus); 0: one (a Slurm runner's gpus = 0 asks for none:
  // slurm.gpus). Engine runners use what they attach.
  int gpus = 0;
  // Its nodes' nvidia.com/gpu.product label as GPU feature discovery writes
  // it ("NVIDIA-H100-80GB-HBM3"): an exported Job's node selector.
  std::string gpu_product;
  // gpu = "slurm" (docs/verify.md, "Slurm"): one sbatch job per image runs
  // the smoke unit on a node the scheduler picks.
  struct Slurm {
    std::string partition;                  // "": the cluster's default
    int gpus = 1;                           // --gres=gpu:N; 0 asks for none (a GPU-less CI node)
    std::string container = "docker";       // how the job runs the unit: docker | podman | pyxis (enroot: through pyxis)
    std::string container_cli;              // docker/podman's program on the node; "": its name on PATH
    int time_limit_min = 0;                 // --time; 0: from verify's --timeout
    int queue_timeout_min = 60;             // a job still pending after this is cancelled
    std::vector<std::string> sbatch_args;   // appended to kiln's #SBATCH lines: --account, --qos, --constraint
    std::string job_dir;                    // scripts and output; "": <state>/slurm (kiln and the node both read it)
  } slurm;
  Location where;
};

// [pip]: where the PyTorch wheels come from. Each key given replaces the
// install recipe's (recipes/install/pytorch.toml [pip]); docs/matrix.md.
struct FindLinks {
  std::string text;       // as written
  std::string directory;  // a local wheelhouse: absolute path; "" for a URL
  Location where;
};

struct Pip {
  std::optional<std::string> index_url;
  std::optional<std::vector<std::string>> extra_index_urls;
  std::optional<std::vector<FindLinks>> find_links;
  std::optional<bool> no_index;
  std::optional<std::vector<std::string>> packages;
  // A build secret for a private index: its id (the RUN step reads
  // /run/secrets/<id>, a netrc file) and where kiln takes it from, an
  // environment variable's name or a file; never the value itself.
  std::string secret;
  std::string secret_env;
  std::string secret_file;  // absolute
  Location where;
};

// [cache]: the package caches every build of the matrix goes through
// (docs/build.md, "Package caches"). Nothing from them reaches a layer.
struct Cache {
  // apt: "" none; "kiln": kiln starts Debian's apt-cacher-ng under the state
  // directory for the build; "http://HOST:PORT": an existing apt proxy. The
  // generated Dockerfiles take it as build argument APT_PROXY, per apt command.
  std::string apt;
  // pip: wheels and HTTP responses in a BuildKit cache mount
  // (RUN --mount=type=cache,target=/root/.cache/pip): buildx backend only.
  bool pip = false;
  Location where;
};

// [budget]: the largest image each flavor may be, in bytes (0: none); the
// static check fails an image over it, naming its largest layers.
struct Budget {
  std::map<std::string, std::int64_t> bytes;   // flavor -> bytes
  std::map<std::string, std::string> written;  // flavor -> as written ("6GB")
};

// "6GB", "500MB", "1.5GiB", "123456" -> bytes (kB/MB/GB decimal as `docker
// images` prints them, KiB/MiB/GiB binary); 0 when it is not a size.
std::int64_t parse_byte_size(std::string_view text);

struct Matrix {
  std::string path;
  std::string name;
  std::string description;
  std::vector<Axis> axes;  // in kAxes order, only those given
  std::vector<Rule> include;
  std::vector<Rule> exclude;
  std::vector<Value> targets;
  std::optional<Value> arch_list;  // explicit arch list for images without PyTorch
  Policy policy;
  Registry registry;
  std::vector<Value> tag_templates;
  std::vector<BaseOverride> bases;
  std::vector<Runner> runners;
  // Every GPU class the matrix names (policy, overrides, runners), where it
  // names it: the plan checks each against the catalog's GPUs.
  std::vector<Value> gpu_classes_named;
  std::string user = "kiln";
  int uid = 10001;
  // The images' platform ([image] platform): "x86_64" (default) or "aarch64".
  // GPUs that come only in aarch64 systems are never served by x86_64 images.
  // A `platform` axis (several platforms under one tag, an OCI index)
  // replaces it per combination.
  std::string platform = "x86_64";
  Pip pip;
  // use_config = false: kiln's config file (kiln.toml, docs/config.md) adds
  // no runners, registry or credential helpers to this matrix.
  bool use_config = true;
  Location use_config_where;
  Cache cache;
  Budget budget;
  // [engine_labels]: flavor ("runtime", "devel") or "all" -> labels an engine
  // must carry to build that flavor's images.
  std::map<std::string, std::vector<std::string>> engine_labels;

  const Axis* axis(std::string_view name) const;
};

// Throws InputError with every problem found, each at file:line:col.
Matrix parse_matrix_file(const std::string& path);
Matrix parse_matrix_text(std::string_view text, const std::string& name);

inline constexpr const char* kDefaultTagTemplate = "{pytorch}-cuda{cuda}-cudnn{cudnn_major}-{flavor}";

}  // namespace kiln::matrix
