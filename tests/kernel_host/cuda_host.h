// Just enough of CUDA's device-side language to compile a kernel as plain C++ and run it on the CPU:
// the kernel qualifiers become nothing (or inline), and the built-in thread coordinates become globals
// that a host loop over the grid sets before each "thread" runs. Kernels that use shared memory,
// __syncthreads or atomics need more than this; crop.cu uses none of them.
#pragma once

#include <math.h>

struct dim3 {
    unsigned int x, y, z;
};

static dim3 threadIdx, blockIdx, blockDim, gridDim;

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline

// Runs `kernel(args...)` once per thread of the grid, in order (no two threads run at once).
template <typename Kernel, typename... Args>
void launch_on_host(dim3 grid, dim3 block, Kernel kernel, Args... args) {
    gridDim = grid;
    blockDim = block;
    for (blockIdx.z = 0; blockIdx.z < grid.z; ++blockIdx.z)
        for (blockIdx.y = 0; blockIdx.y < grid.y; ++blockIdx.y)
            for (blockIdx.x = 0; blockIdx.x < grid.x; ++blockIdx.x)
                for (threadIdx.z = 0; threadIdx.z < block.z; ++threadIdx.z)
                    for (threadIdx.y = 0; threadIdx.y < block.y; ++threadIdx.y)
                        for (threadIdx.x = 0; threadIdx.x < block.x; ++threadIdx.x) kernel(args...);
}
