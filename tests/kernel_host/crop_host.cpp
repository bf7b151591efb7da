// kernels/crop.cu itself, compiled as C++ for the CPU (tests/test_kernel_host.py), launched with the
// same block shape as engines/cuda_crop.py.
#include "cuda_host.h"
#include "crop.cu"

extern "C" void crop_rois_host(const FrameDesc* frames, const int* frame_of_roi, const float* affine, float* out,
                               int num_rois, int out_w, int out_h, int border, float border_value, float scale,
                               float offset, unsigned int block_x, unsigned int block_y) {
    const dim3 block = {block_x, block_y, 1};
    const dim3 grid = {(out_w + block_x - 1) / block_x, (out_h + block_y - 1) / block_y,
                       static_cast<unsigned int>(num_rois)};
    launch_on_host(grid, block, crop_rois, frames, frame_of_roi, affine, out, num_rois, out_w, out_h, border,
                   border_value, scale, offset);
}
