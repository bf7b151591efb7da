// Rotated crops for BlazePose: every ROI of every camera in one launch, straight into the model's
// NCHW float32 input.
//
// Math spec (kernels/reference.py is its NumPy twin, tested against OpenCV on the CPU):
//  * output pixel (u, v), at integer coordinates, maps to the source position
//    (x, y) = A_m * (u, v, 1) with the ROI's 2x3 affine A_m (pose.roi.crop_affine); source pixel
//    centres are at integer coordinates, as in OpenCV's warps;
//  * the position is rounded to 1/32 pixel, as OpenCV's warpPerspective/warpAffine do (INTER_BITS),
//    then sampled bilinearly; a neighbour outside the frame is clamped into it (border 0, replicate)
//    or contributes `border_value` (border 1, constant: the detector's letterbox);
//  * out = value * scale + offset, channel c of ROI m at out[((m * 3 + c) * out_h + v) * out_w + u].
// With these rules the result is within one grey level of MediaPipe's OpenCV crop, which rounds the
// same bilinear value to uint8.
//
// Frames: a table of FrameDesc, one per camera frame, indexed per ROI by frame_of_roi[m].
//  format 0: interleaved uint8, RGB (channels 3) or RGBA (channels 4, alpha ignored);
//  format 1/2: NV12 (Y plane `data`, interleaved UV plane `uv` at half resolution), BT.601/BT.709
//  limited range; Y and UV are sampled separately (chroma left-sited, H.264's default: horizontally
//  on the even luma columns, vertically between the two rows of its 2x2 block) and
//  converted to RGB after interpolation, which equals interpolating RGB because the conversion is
//  affine (up to the clamp to [0, 255]).

struct FrameDesc {
    unsigned long long data;  // interleaved pixels, or the Y plane
    unsigned long long uv;    // NV12 UV plane; 0 for interleaved frames
    int pitch;                // bytes from one row of `data` to the next
    int uv_pitch;
    int width;
    int height;
    int channels;             // bytes per pixel of `data`: 3, 4, or 1 (NV12 Y)
    int format;               // 0 interleaved, 1 NV12 BT.601, 2 NV12 BT.709
};
static_assert(sizeof(FrameDesc) == 40, "FrameDesc must match blazestream.kernels.FRAME_DESC_DTYPE");

__device__ __forceinline__ int clampi(int value, int low, int high) {
    return value < low ? low : (value > high ? high : value);
}

__device__ __forceinline__ float clampf(float value, float low, float high) {
    return fminf(fmaxf(value, low), high);
}

// Bilinear weights and neighbour coordinates of one position on a width x height grid.
struct Taps {
    int x[2];
    int y[2];
    float w[2][2];    // [row][column]
    bool in[2][2];    // false: the neighbour lies outside and the border rule applies
};

__device__ __forceinline__ Taps make_taps(float x, float y, int width, int height, bool replicate) {
    Taps t;
    const float fx0 = floorf(x);
    const float fy0 = floorf(y);
    const float ax = x - fx0;
    const float ay = y - fy0;
    const int x0 = static_cast<int>(fx0);
    const int y0 = static_cast<int>(fy0);
    const float wx[2] = {1.0f - ax, ax};
    const float wy[2] = {1.0f - ay, ay};
    for (int j = 0; j < 2; ++j) {
        const int yy = y0 + j;
        t.y[j] = replicate ? clampi(yy, 0, height - 1) : yy;
        for (int i = 0; i < 2; ++i) {
            const int xx = x0 + i;
            t.x[i] = replicate ? clampi(xx, 0, width - 1) : xx;
            t.w[j][i] = wy[j] * wx[i];
            t.in[j][i] = replicate || (xx >= 0 && xx < width && yy >= 0 && yy < height);
        }
    }
    return t;
}

__device__ __forceinline__ unsigned char load(const FrameDesc& f, int x, int y, int c) {
    const unsigned char* row = reinterpret_cast<const unsigned char*>(f.data) + static_cast<long long>(y) * f.pitch;
    return row[x * f.channels + c];
}

__device__ void sample_interleaved(const FrameDesc& f, float x, float y, bool replicate, float border_value,
                                   float rgb[3]) {
    const Taps t = make_taps(x, y, f.width, f.height, replicate);
    float outside = 0.0f;
    for (int c = 0; c < 3; ++c) rgb[c] = 0.0f;
    for (int j = 0; j < 2; ++j) {
        for (int i = 0; i < 2; ++i) {
            if (!t.in[j][i]) {
                outside += t.w[j][i];
                continue;
            }
            for (int c = 0; c < 3; ++c) rgb[c] += t.w[j][i] * static_cast<float>(load(f, t.x[i], t.y[j], c));
        }
    }
    for (int c = 0; c < 3; ++c) rgb[c] += outside * border_value;
}

__device__ void sample_nv12(const FrameDesc& f, float x, float y, bool replicate, float border_value,
                            float rgb[3]) {
    const Taps t = make_taps(x, y, f.width, f.height, replicate);
    float luma = 0.0f;
    float inside = 0.0f;
    for (int j = 0; j < 2; ++j) {
        for (int i = 0; i < 2; ++i) {
            if (t.in[j][i]) {
                luma += t.w[j][i] * static_cast<float>(load(f, t.x[i], t.y[j], 0));
                inside += t.w[j][i];
            }
        }
    }
    if (inside <= 0.0f) {
        for (int c = 0; c < 3; ++c) rgb[c] = border_value;
        return;
    }
    luma /= inside;
    // Chroma: always clamped into its plane; the border rule follows the luma grid.
    const int cw = (f.width + 1) / 2;
    const int ch = (f.height + 1) / 2;
    // H.264/H.265 default siting (chroma_sample_loc_type 0): co-sited with the even luma columns,
    // halfway between the two luma rows.
    const Taps tc = make_taps(x * 0.5f, (y + 0.5f) * 0.5f - 0.5f, cw, ch, true);
    float cb = 0.0f;
    float cr = 0.0f;
    for (int j = 0; j < 2; ++j) {
        const unsigned char* row = reinterpret_cast<const unsigned char*>(f.uv) + static_cast<long long>(tc.y[j]) * f.uv_pitch;
        for (int i = 0; i < 2; ++i) {
            cb += tc.w[j][i] * static_cast<float>(row[2 * tc.x[i]]);
            cr += tc.w[j][i] * static_cast<float>(row[2 * tc.x[i] + 1]);
        }
    }
    const float yy = 1.164383f * (luma - 16.0f);
    const float u = cb - 128.0f;
    const float v = cr - 128.0f;
    float r, g, b;
    if (f.format == 2) {  // BT.709
        r = yy + 1.792741f * v;
        g = yy - 0.213249f * u - 0.532909f * v;
        b = yy + 2.112402f * u;
    } else {              // BT.601
        r = yy + 1.596027f * v;
        g = yy - 0.391762f * u - 0.812968f * v;
        b = yy + 2.017232f * u;
    }
    const float outside = 1.0f - inside;
    rgb[0] = clampf(r, 0.0f, 255.0f) * inside + outside * border_value;
    rgb[1] = clampf(g, 0.0f, 255.0f) * inside + outside * border_value;
    rgb[2] = clampf(b, 0.0f, 255.0f) * inside + outside * border_value;
}

extern "C" __global__ void crop_rois(const FrameDesc* __restrict__ frames,
                                     const int* __restrict__ frame_of_roi,
                                     const float* __restrict__ affine,
                                     float* __restrict__ out,
                                     int num_rois,
                                     int out_w,
                                     int out_h,
                                     int border,
                                     float border_value,
                                     float scale,
                                     float offset) {
    const int u = blockIdx.x * blockDim.x + threadIdx.x;
    const int v = blockIdx.y * blockDim.y + threadIdx.y;
    const int m = blockIdx.z;
    if (u >= out_w || v >= out_h || m >= num_rois) {
        return;
    }
    const FrameDesc f = frames[frame_of_roi[m]];
    const float* a = affine + 6 * m;
    const float fu = static_cast<float>(u);
    const float fv = static_cast<float>(v);
    // OpenCV's 1/32-pixel grid (rintf rounds half to even, like its cvRound).
    const float x = rintf((a[0] * fu + a[1] * fv + a[2]) * 32.0f) * (1.0f / 32.0f);
    const float y = rintf((a[3] * fu + a[4] * fv + a[5]) * 32.0f) * (1.0f / 32.0f);
    const bool replicate = border == 0;
    float rgb[3];
    if (f.format == 0) {
        sample_interleaved(f, x, y, replicate, border_value, rgb);
    } else {
        sample_nv12(f, x, y, replicate, border_value, rgb);
    }
    const long long plane = static_cast<long long>(out_h) * out_w;
    float* dst = out + static_cast<long long>(m) * 3 * plane + static_cast<long long>(v) * out_w + u;
    for (int c = 0; c < 3; ++c) {
        dst[c * plane] = rgb[c] * scale + offset;
    }
}
