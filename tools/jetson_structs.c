/* The C probe behind the struct layouts of pipeline/jetson_surface.py (and its test).
 *
 * Prints "<name> <value>" lines: sizes and offsets of the structures that module declares with ctypes, as
 * the vendor headers lay them out. CUDA's cudaEGL.h comes with the nvidia-cuda-runtime-cu12 wheel that
 * `make gpu-check` installs; nvbufsurface.h only with DeepStream (-I /opt/nvidia/deepstream/deepstream/
 * sources/includes), so its lines are printed only where that header is found.
 *
 *   cc -I <cuda include> [-I <deepstream includes>] -o jetson_structs tools/jetson_structs.c && ./jetson_structs
 */
#include <stddef.h>
#include <stdio.h>

#include <cudaEGL.h>
#if defined(__has_include)
#if __has_include(<nvbufsurface.h>)
#include <nvbufsurface.h>
#define HAVE_NVBUFSURFACE 1
#endif
#endif

#define SHOW(name, value) printf("%s %zu\n", name, (size_t)(value))

int main(void) {
    SHOW("CUeglFrame", sizeof(CUeglFrame));
    SHOW("CUeglFrame.pitch", offsetof(CUeglFrame, pitch));
    SHOW("CUeglFrame.frameType", offsetof(CUeglFrame, frameType));
    SHOW("CUeglFrame.cuFormat", offsetof(CUeglFrame, cuFormat));
#ifdef HAVE_NVBUFSURFACE
    SHOW("NvBufSurfacePlaneParams", sizeof(NvBufSurfacePlaneParams));
    SHOW("NvBufSurfaceMappedAddr", sizeof(NvBufSurfaceMappedAddr));
    SHOW("NvBufSurfaceMappedAddr.eglImage", offsetof(NvBufSurfaceMappedAddr, eglImage));
    SHOW("NvBufSurfaceParams", sizeof(NvBufSurfaceParams));
    SHOW("NvBufSurfaceParams.mappedAddr", offsetof(NvBufSurfaceParams, mappedAddr));
    SHOW("NvBufSurfaceParams.paramex", offsetof(NvBufSurfaceParams, paramex));
    SHOW("NvBufSurface", sizeof(NvBufSurface));
    SHOW("NvBufSurface.surfaceList", offsetof(NvBufSurface, surfaceList));
#endif
    return 0;
}
