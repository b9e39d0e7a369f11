// memory: host<->device and device<->device copy bandwidth on every device,
// timed with CUDA events after a warm-up, and a round trip whose bytes are
// checked (a fast copy of the wrong data is not a pass).

#include <cstring>

#include "cuda_util.h"
#include "sections.h"

namespace kiln::smoke {

namespace {

constexpr int kWarmup = 2;
constexpr int kIters = 5;

// GB/s (10^9 bytes) of `iters` copies of `bytes`, each direction timed alone.
double time_copy(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind,
                 cudaStream_t stream) {
  for (int i = 0; i < kWarmup; ++i) KILN_CUDA(cudaMemcpyAsync(dst, src, bytes, kind, stream));
  EventTimer t(stream);
  t.start();
  for (int i = 0; i < kIters; ++i) KILN_CUDA(cudaMemcpyAsync(dst, src, bytes, kind, stream));
  double s = t.stop();
  return double(bytes) * kIters / s / 1e9;
}

Json measure_device(const DeviceInfo& dev, std::size_t bytes, unsigned seed) {
  KILN_CUDA(cudaSetDevice(dev.index));
  cudaStream_t stream;
  KILN_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  struct StreamGuard {
    cudaStream_t s;
    ~StreamGuard() { cudaStreamDestroy(s); }
  } guard{stream};

  const std::size_t words = bytes / sizeof(unsigned);
  PinnedBuffer<unsigned> src(words), back(words);
  DeviceBuffer<unsigned> d_a(words), d_b(words);
  for (std::size_t i = 0; i < words; ++i) src.get()[i] = static_cast<unsigned>(i) * 2246822519u ^ seed;
  std::memset(back.get(), 0, back.bytes());

  Json j = Json::object();
  j["device"] = dev.index;
  j["bytes"] = static_cast<long long>(words * sizeof(unsigned));
  j["h2d_gbps"] = time_copy(d_a.get(), src.get(), src.bytes(), cudaMemcpyHostToDevice, stream);
  // Device-to-device counts the bytes copied once (not read + written).
  j["d2d_gbps"] = time_copy(d_b.get(), d_a.get(), d_a.bytes(), cudaMemcpyDeviceToDevice, stream);
  j["d2h_gbps"] = time_copy(back.get(), d_b.get(), d_b.bytes(), cudaMemcpyDeviceToHost, stream);
  KILN_CUDA(cudaStreamSynchronize(stream));

  std::size_t wrong = 0;
  for (std::size_t i = 0; i < words; ++i) wrong += back.get()[i] != src.get()[i];
  j["round_trip_ok"] = wrong == 0;
  if (wrong)
    throw std::runtime_error("device " + dev.label() + ": H2D->D2D->D2H round trip changed " +
                             std::to_string(wrong) + " of " + std::to_string(words) + " words");
  return j;
}

}  // namespace

void run_memory(Context& ctx, Section& s) {
  const std::size_t bytes = std::size_t(ctx.options.copy_mb) << 20;
  s.data["pinned_host"] = true;
  s.data["iterations"] = kIters;
  Json per = Json::array();
  for (const auto& dev : ctx.devices) {
    try {
      per.push_back(measure_device(dev, bytes, static_cast<unsigned>(ctx.seed)));
    } catch (const std::exception& e) {
      s.fail(e.what());
    }
  }
  s.data["devices"] = per;
  s.pass_unless_failed();
}

}  // namespace kiln::smoke
