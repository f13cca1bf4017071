// Images a researcher looks at: PNG encoding and sample grids.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <string>

namespace gantry {

// Encodes 8-bit pixels, row-major HWC, C in {1, 3, 4}, as PNG bytes.
std::string encode_png(const uint8_t* pixels, int height, int width, int channels);
// Writes a PNG atomically (temporary name + rename).
void write_png(const std::string& path, const uint8_t* pixels, int height, int width, int channels);

// Tiles a batch (N, C, H, W) of floats in [lo, hi] into one uint8 (rows*H + pad, cols*W + pad, C) image
// with `pad` pixels of border; `cols` = 0 picks ceil(sqrt(N)).
torch::Tensor make_grid(const torch::Tensor& images, int cols = 0, int pad = 2, double lo = -1.0, double hi = 1.0);
// make_grid + write_png.
void save_grid(const std::string& path, const torch::Tensor& images, int cols = 0, double lo = -1.0, double hi = 1.0);

}  // namespace gantry
