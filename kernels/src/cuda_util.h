// CUDA runtime helpers for the GPU sections: errors that carry the real CUDA
// error name and text, RAII device/pinned buffers and event timing.
#pragma once

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace kiln::smoke {

// A failed CUDA call, with the error's enum name ("cudaErrorNoKernelImageForDevice")
// and the runtime's own text ("no kernel image is available for execution on
// the device"), so the report names the real cause.
class CudaError : public std::runtime_error {
 public:
  CudaError(cudaError_t code, const std::string& what) : std::runtime_error(what), code_(code) {}
  cudaError_t code() const { return code_; }

 private:
  cudaError_t code_;
};

inline std::string cuda_error_text(cudaError_t e) {
  return std::string(cudaGetErrorName(e)) + " (" + std::to_string(static_cast<int>(e)) +
         "): " + cudaGetErrorString(e);
}

inline void cuda_check(cudaError_t e, const char* call, const char* file, int line) {
  if (e == cudaSuccess) return;
  // Clear a sticky-free error so later sections start clean.
  (void)cudaGetLastError();
  throw CudaError(e, cuda_error_text(e) + " in " + call + " at " + file + ":" + std::to_string(line));
}

#define KILN_CUDA(call) ::kiln::smoke::cuda_check((call), #call, __FILE__, __LINE__)

template <class T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(std::size_t count) : count_(count) {
    KILN_CUDA(cudaMalloc(reinterpret_cast<void**>(&ptr_), count * sizeof(T)));
  }
  ~DeviceBuffer() { if (ptr_) cudaFree(ptr_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  T* get() const { return ptr_; }
  std::size_t count() const { return count_; }
  std::size_t bytes() const { return count_ * sizeof(T); }

 private:
  T* ptr_ = nullptr;
  std::size_t count_;
};

// Page-locked host memory: the only kind that copies at full PCIe/NVLink
// speed and asynchronously, so bandwidth figures mean something.
template <class T>
class PinnedBuffer {
 public:
  explicit PinnedBuffer(std::size_t count) : count_(count) {
    KILN_CUDA(cudaMallocHost(reinterpret_cast<void**>(&ptr_), count * sizeof(T)));
  }
  ~PinnedBuffer() { if (ptr_) cudaFreeHost(ptr_); }
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  T* get() const { return ptr_; }
  std::size_t bytes() const { return count_ * sizeof(T); }

 private:
  T* ptr_ = nullptr;
  std::size_t count_;
};

// Times work enqueued on a stream with CUDA events (GPU time, not host time).
class EventTimer {
 public:
  explicit EventTimer(cudaStream_t s = nullptr) : stream_(s) {
    KILN_CUDA(cudaEventCreate(&start_));
    KILN_CUDA(cudaEventCreate(&stop_));
  }
  ~EventTimer() {
    cudaEventDestroy(start_);
    cudaEventDestroy(stop_);
  }
  EventTimer(const EventTimer&) = delete;
  EventTimer& operator=(const EventTimer&) = delete;
  void start() { KILN_CUDA(cudaEventRecord(start_, stream_)); }
  // Seconds between start() and now, waiting for the stream to get there.
  double stop() {
    KILN_CUDA(cudaEventRecord(stop_, stream_));
    KILN_CUDA(cudaEventSynchronize(stop_));
    float ms = 0;
    KILN_CUDA(cudaEventElapsedTime(&ms, start_, stop_));
    return ms / 1e3;
  }

 private:
  cudaStream_t stream_;
  cudaEvent_t start_{}, stop_{};
};

}  // namespace kiln::smoke
