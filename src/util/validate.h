// Grammars for strings that leave kiln's hands: image references that name
// registries, names that become path components, apt packages, ENV lines and
// pip arguments that become Dockerfile text. Every user- or catalog-supplied
// string is checked against the grammar of where it goes, once when it is
// read (with file:line:col) and once more just before a Dockerfile is
// rendered. A newline in any of them would add a Dockerfile instruction; a
// "../" would write outside the directory kiln owns.
//
// Each check returns nullopt when the text fits, else a short reason
// ("holds a newline", "'..' is not a name") for an error message.
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <toml++/toml.h>

#include "util/diag.h"

namespace kiln::grammar {

using Problem = std::optional<std::string>;
using Check = Problem (*)(std::string_view);

// No control characters (newline, CR, NUL, ESC, DEL ...): the floor for
// every string kiln reads.
Problem single_line(std::string_view text);
// A name that is at once a safe path component and an OCI repository path
// component: [a-z0-9]+ joined by '.', '_', '__' or '-'s; at most 128.
// (Matrix names: they name directories and the image repository.)
Problem name(std::string_view text);
// An OCI tag: [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}. Never "." or "..", so also
// a safe path component (combination ids, OS names).
Problem tag(std::string_view text);
// host[:port] of a registry ("127.0.0.1:5000", "registry.example.com"),
// optionally followed by /path components ("ghcr.io/team").
Problem registry(std::string_view text);
// A repository path without a host: "ml/pytorch".
Problem repository(std::string_view text);
// A full OCI image reference: [host[:port]/]path[:tag][@digest].
Problem image_reference(std::string_view text);
// A Debian package name (Debian policy 5.6.1), optionally with :arch and
// =version: "libcudart12", "nvidia-cuda-toolkit=12.4.131~12.4.1-2".
Problem debian_package(std::string_view text);
// An apt archive component: "main", "contrib", "non-free-firmware".
Problem apt_component(std::string_view text);
// NAME=VALUE for an ENV line: a POSIX name, a value without blanks, quotes or
// backslashes (Dockerfile ENV would split or unquote them).
Problem env_assignment(std::string_view text);
// A pip requirement (PEP 508 without markers or URLs): "torch==2.6.0",
// "nvidia-cudnn-cu12[extra]>=9,<10". Never begins with '-' (no options).
Problem pip_requirement(std::string_view text);
// An http(s) URL that is safe unquoted in a shell word: no blanks, quotes,
// '$', '&', ';', '|', '<', '>', '(', ')', backslashes or glob characters.
Problem url(std::string_view text);
// An absolute path of plain characters, no "." or ".." components.
Problem absolute_path(std::string_view text);

// The text as it can be shown in an error: quoted, control characters
// escaped (\n, \x1b), clipped to 80 characters.
std::string quoted(std::string_view text);

// Catalog files: every string (and key) is single-line, and the values of
// the keys that end up in Dockerfiles fit their grammar (runtime/devel/
// python_packages: Debian packages; image: an image reference; devel_env: an
// ENV assignment; index: a URL; packages: pip requirements; venv: a path;
// ...). "{placeholder}"s in index/packages are checked as if filled.
void check_catalog_strings(const toml::table& doc, const std::string& file, std::vector<Diagnostic>& diags);

// Every string value and key in a TOML document is single-line, except the
// values of keys in `multiline_keys` (free text such as a description).
void check_single_line(const toml::table& doc, const std::string& file, std::vector<Diagnostic>& diags,
                       const std::vector<std::string_view>& multiline_keys = {});

}  // namespace kiln::grammar
