// Image codecs and resampling for the converters: decode JPEG / PNG / WebP (format detected from
// the bytes, never a file name), center-crop to a square, area-filter resize. Encoders exist so
// tests and synthetic sources can build real encoded inputs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gantry::data {

struct Image {
  int height = 0, width = 0, channels = 0;
  std::vector<uint8_t> pixels;  // (H, W, C) row-major
};

enum class ImageFormat { kUnknown, kJpeg, kPng, kWebp };

ImageFormat detect_format(const uint8_t* bytes, size_t size);
const char* format_name(ImageFormat f);

// Decodes to `channels` (1: gray, 3: RGB; alpha dropped, gray replicated). Throws std::runtime_error
// with a short reason on undecodable input.
Image decode_image(const uint8_t* bytes, size_t size, int channels);

// Largest centered square.
Image center_crop_square(const Image& in);
// Separable resize: area (box) filter when shrinking — each output pixel is the mean of the input
// area it covers, as OpenCV's INTER_AREA and PIL's BOX do — and linear when enlarging.
Image resize_area(const Image& in, int out_height, int out_width);
// Crop to square then resize to resolution x resolution (no-op for resolution 0).
Image square_resize(const Image& in, int resolution);

std::string encode_jpeg(const Image& img, int quality = 90);
std::string encode_webp(const Image& img, bool lossless, float quality = 90.f);
std::string encode_png_image(const Image& img);

}  // namespace gantry::data
