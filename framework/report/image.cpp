#include "report/image.h"

#include <png.h>

#include <cmath>
#include <stdexcept>
#include <vector>

#include "core/fs.h"

namespace gantry {

namespace {
void png_append(png_structp png, png_bytep data, png_size_t n) {
  auto* out = static_cast<std::string*>(png_get_io_ptr(png));
  out->append(reinterpret_cast<const char*>(data), n);
}
void png_flush_noop(png_structp) {}
}  // namespace

std::string encode_png(const uint8_t* pixels, int height, int width, int channels) {
  if (channels != 1 && channels != 3 && channels != 4) throw std::invalid_argument("encode_png: channels must be 1, 3 or 4");
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (!png || !info) throw std::runtime_error("encode_png: out of memory");
  std::string out;
  std::vector<png_bytep> rows(static_cast<size_t>(height));
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    throw std::runtime_error("encode_png: libpng failed");
  }
  png_set_write_fn(png, &out, png_append, png_flush_noop);
  int type = channels == 1 ? PNG_COLOR_TYPE_GRAY : channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_RGBA;
  png_set_IHDR(png, info, static_cast<png_uint_32>(width), static_cast<png_uint_32>(height), 8, type,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  for (int y = 0; y < height; ++y)
    rows[static_cast<size_t>(y)] = const_cast<png_bytep>(pixels + static_cast<size_t>(y) * width * channels);
  png_set_rows(png, info, rows.data());
  png_write_png(png, info, PNG_TRANSFORM_IDENTITY, nullptr);
  png_destroy_write_struct(&png, &info);
  return out;
}

void write_png(const std::string& path, const uint8_t* pixels, int height, int width, int channels) {
  write_file_atomic(path, encode_png(pixels, height, width, channels));
}

torch::Tensor make_grid(const torch::Tensor& images, int cols, int pad, double lo, double hi) {
  TORCH_CHECK(images.dim() == 4, "make_grid expects (N, C, H, W)");
  auto x = images.detach().to(torch::kCPU, torch::kFloat32);
  int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  if (cols <= 0) cols = static_cast<int>(std::ceil(std::sqrt(static_cast<double>(std::max<int64_t>(n, 1)))));
  int64_t rows = (n + cols - 1) / cols;
  x = ((x - lo) / (hi - lo) * 255.0).round().clamp(0, 255).to(torch::kUInt8).permute({0, 2, 3, 1}).contiguous();
  auto grid = torch::zeros({rows * (h + pad) + pad, cols * (w + pad) + pad, c}, torch::kUInt8);
  for (int64_t i = 0; i < n; ++i) {
    int64_t r = i / cols, col = i % cols;
    grid.narrow(0, pad + r * (h + pad), h).narrow(1, pad + col * (w + pad), w).copy_(x[i]);
  }
  return grid;
}

void save_grid(const std::string& path, const torch::Tensor& images, int cols, double lo, double hi) {
  auto grid = make_grid(images, cols, 2, lo, hi);
  write_png(path, grid.data_ptr<uint8_t>(), static_cast<int>(grid.size(0)), static_cast<int>(grid.size(1)),
            static_cast<int>(grid.size(2)));
}

}  // namespace gantry
