// Compiled while a devel image is built, for every architecture the image
// targets: proves the image's own nvcc, headers and host compiler work.
#include <cstdio>
#include <cuda_runtime.h>

__global__ void saxpy(int n, float a, const float* x, float* y) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = a * x[i] + y[i];
}

int main() {
  int runtime = 0;
  cudaRuntimeGetVersion(&runtime);
  std::printf("compiled against CUDA runtime %d\n", runtime);
  saxpy<<<1, 32>>>(0, 1.0f, nullptr, nullptr);
  return 0;
}
