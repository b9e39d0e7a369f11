// nccl: one all-reduce (sum, FP32) across all visible GPUs from this one
// process (ncclCommInitAll), its result checked on every rank, and the bus
// bandwidth reported. With one GPU it still runs, as a single rank, and says so.

#include <nccl.h>

#include <chrono>
#include <cstdlib>

#include "checks.h"
#include "cuda_util.h"
#include "sections.h"

namespace kiln::smoke {

namespace {

void nccl_check(ncclResult_t r, const char* call, const char* file, int line) {
  if (r == ncclSuccess) return;
  throw std::runtime_error(std::string(ncclGetErrorString(r)) + " (" +
                           std::to_string(static_cast<int>(r)) + ") in " + call + " at " + file +
                           ":" + std::to_string(line));
}
#define KILN_NCCL(call) nccl_check((call), #call, __FILE__, __LINE__)

constexpr int kWarmup = 2, kIters = 5;

// Small integers, so every partial sum is exact in FP32 whatever order NCCL
// adds in: rank r holds (r + 1) * (i % 13 + 1).
float value(int rank, std::size_t i) { return float((rank + 1) * int(i % 13 + 1)); }

struct Ranks {
  std::vector<ncclComm_t> comms;
  std::vector<cudaStream_t> streams;
  std::vector<float*> send, recv;
  ~Ranks() {
    for (std::size_t r = 0; r < comms.size(); ++r) {
      cudaSetDevice(static_cast<int>(r));
      if (send[r]) cudaFree(send[r]);
      if (recv[r]) cudaFree(recv[r]);
      if (streams[r]) cudaStreamDestroy(streams[r]);
      if (comms[r]) ncclCommDestroy(comms[r]);
    }
  }
};

void all_reduce(Ranks& rk, std::size_t count) {
  KILN_NCCL(ncclGroupStart());
  for (std::size_t r = 0; r < rk.comms.size(); ++r)
    KILN_NCCL(ncclAllReduce(rk.send[r], rk.recv[r], count, ncclFloat, ncclSum, rk.comms[r], rk.streams[r]));
  KILN_NCCL(ncclGroupEnd());
}

void sync_all(Ranks& rk) {
  for (std::size_t r = 0; r < rk.comms.size(); ++r) {
    KILN_CUDA(cudaSetDevice(static_cast<int>(r)));
    KILN_CUDA(cudaStreamSynchronize(rk.streams[r]));
  }
}

std::size_t count_wrong(const Ranks& rk, std::size_t count) {
  const int n = static_cast<int>(rk.comms.size());
  std::vector<float> host(count);
  std::size_t wrong = 0;
  for (int r = 0; r < n; ++r) {
    KILN_CUDA(cudaSetDevice(r));
    KILN_CUDA(cudaMemcpy(host.data(), rk.recv[r], count * sizeof(float), cudaMemcpyDeviceToHost));
    for (std::size_t i = 0; i < count; ++i)
      wrong += host[i] != float(n * (n + 1) / 2 * int(i % 13 + 1));
  }
  return wrong;
}

}  // namespace

void run_nccl(Context& ctx, Section& s) {
  // The suite never needs NVLink SHARP / multicast; keep it off unless the
  // caller decided otherwise (on shared hosts it can wedge the GPUs).
  setenv("NCCL_NVLS_ENABLE", "0", 0);
  int v = 0;
  KILN_NCCL(ncclGetVersion(&v));
  s.data["version"] = nccl_version_string(v);
  const int n = static_cast<int>(ctx.devices.size());
  const std::size_t count = (std::size_t(ctx.options.nccl_mb) << 20) / sizeof(float);
  s.data["ranks"] = n;
  s.data["bytes"] = static_cast<long long>(count * sizeof(float));
  if (n == 1) s.notes.push_back("one GPU: ran as a single rank (no inter-GPU traffic; bus bandwidth is 0 by definition)");

  Ranks rk;
  rk.comms.assign(n, nullptr);
  rk.streams.assign(n, nullptr);
  rk.send.assign(n, nullptr);
  rk.recv.assign(n, nullptr);
  KILN_NCCL(ncclCommInitAll(rk.comms.data(), n, nullptr));
  std::vector<float> host(count);
  for (int r = 0; r < n; ++r) {
    KILN_CUDA(cudaSetDevice(r));
    KILN_CUDA(cudaStreamCreateWithFlags(&rk.streams[r], cudaStreamNonBlocking));
    KILN_CUDA(cudaMalloc(&rk.send[r], count * sizeof(float)));
    KILN_CUDA(cudaMalloc(&rk.recv[r], count * sizeof(float)));
    for (std::size_t i = 0; i < count; ++i) host[i] = value(r, i);
    KILN_CUDA(cudaMemcpy(rk.send[r], host.data(), count * sizeof(float), cudaMemcpyHostToDevice));
    KILN_CUDA(cudaMemset(rk.recv[r], 0, count * sizeof(float)));
  }

  for (int i = 0; i < kWarmup; ++i) all_reduce(rk, count);
  sync_all(rk);
  // Host wall time across all ranks: the collective ends when the slowest does.
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < kIters; ++i) all_reduce(rk, count);
  sync_all(rk);
  double sec = seconds_since(t0) / kIters;

  const double bytes = double(count) * sizeof(float);
  const double algbw = bytes / sec / 1e9;
  // nccl-tests' convention: an all-reduce moves 2(n-1)/n of the data per rank.
  const double busbw = algbw * 2.0 * (n - 1) / n;
  s.data["time_us"] = sec * 1e6;
  s.data["algbw_gbps"] = algbw;
  s.data["busbw_gbps"] = busbw;

  std::size_t wrong = count_wrong(rk, count);
  s.data["wrong_values"] = static_cast<long long>(wrong);
  if (wrong)
    s.fail("all-reduce sum over " + std::to_string(n) + " rank(s) wrong in " + std::to_string(wrong) +
           " of " + std::to_string(count * n) + " values");
  s.pass_unless_failed();
}

}  // namespace kiln::smoke
