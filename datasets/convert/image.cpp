#include "convert/image.h"

#include <jpeglib.h>
#include <png.h>
#include <webp/decode.h>
#include <webp/encode.h>

#include <cmath>
#include <csetjmp>
#include <cstring>
#include <stdexcept>

#include "report/image.h"

namespace gantry::data {

ImageFormat detect_format(const uint8_t* b, size_t n) {
  if (n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) return ImageFormat::kJpeg;
  if (n >= 8 && std::memcmp(b, "\x89PNG\r\n\x1a\n", 8) == 0) return ImageFormat::kPng;
  if (n >= 12 && std::memcmp(b, "RIFF", 4) == 0 && std::memcmp(b + 8, "WEBP", 4) == 0) return ImageFormat::kWebp;
  return ImageFormat::kUnknown;
}

const char* format_name(ImageFormat f) {
  switch (f) {
    case ImageFormat::kJpeg: return "JPEG";
    case ImageFormat::kPng: return "PNG";
    case ImageFormat::kWebp: return "WebP";
    default: return "unknown";
  }
}

namespace {

// RGB or gray or RGBA pixels → requested channel count.
Image to_channels(int h, int w, int c, const uint8_t* src, int want) {
  Image out{h, w, want, std::vector<uint8_t>(static_cast<size_t>(h) * w * want)};
  size_t n = static_cast<size_t>(h) * w;
  uint8_t* d = out.pixels.data();
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* p = src + i * c;
    if (want == c || (want == 3 && c == 4)) {
      for (int k = 0; k < want; ++k) d[i * want + k] = p[k];
    } else if (want == 3) {  // gray (or gray+alpha) → RGB
      d[i * 3] = d[i * 3 + 1] = d[i * 3 + 2] = p[0];
    } else {  // → gray: ITU-R 601 luma, as PIL's convert("L")
      d[i] = c < 3 ? p[0]
                   : static_cast<uint8_t>((p[0] * 299 + p[1] * 587 + p[2] * 114 + 500) / 1000);
    }
  }
  return out;
}

struct JpegError {
  jpeg_error_mgr mgr;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void jpeg_error_exit(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<JpegError*>(cinfo->err);
  cinfo->err->format_message(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

Image decode_jpeg(const uint8_t* bytes, size_t size, int want) {
  jpeg_decompress_struct cinfo{};
  JpegError err{};
  cinfo.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = jpeg_error_exit;
  err.mgr.output_message = [](j_common_ptr) {};
  // libjpeg only warns about corrupt or truncated data (and fills the rest with gray): a warning makes
  // the record bad, as PIL's "image file is truncated" does.
  err.mgr.emit_message = [](j_common_ptr c, int level) {
    if (level < 0) jpeg_error_exit(c);
  };
  std::vector<uint8_t> buf;
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    throw std::runtime_error(std::string("JPEG: ") + err.message);
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, const_cast<unsigned char*>(bytes), static_cast<unsigned long>(size));
  jpeg_read_header(&cinfo, TRUE);
  cinfo.out_color_space = want == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_start_decompress(&cinfo);
  int w = static_cast<int>(cinfo.output_width), h = static_cast<int>(cinfo.output_height);
  int c = cinfo.output_components;
  buf.resize(static_cast<size_t>(w) * h * c);
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = buf.data() + static_cast<size_t>(cinfo.output_scanline) * w * c;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return to_channels(h, w, c, buf.data(), want);
}

Image decode_webp(const uint8_t* bytes, size_t size, int want) {
  int w = 0, h = 0;
  uint8_t* rgb = WebPDecodeRGB(bytes, size, &w, &h);
  if (!rgb) throw std::runtime_error("WebP: cannot decode");
  Image out;
  try {
    out = to_channels(h, w, 3, rgb, want);
  } catch (...) {
    WebPFree(rgb);
    throw;
  }
  WebPFree(rgb);
  return out;
}

Image decode_png(const uint8_t* bytes, size_t size, int want) {
  png_image img;
  std::memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&img, bytes, size)) throw std::runtime_error(std::string("PNG: ") + img.message);
  // Decode to the file's own gray/RGB and convert with to_channels, as for JPEG and WebP: libpng's
  // RGB → gray works in linear light and gives a different gray than the ITU-R 601 luma used there.
  const int c = (img.format & PNG_FORMAT_FLAG_COLOR) ? 3 : 1;
  img.format = c == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
  std::vector<uint8_t> buf(PNG_IMAGE_SIZE(img));
  if (!png_image_finish_read(&img, nullptr, buf.data(), 0, nullptr)) {
    std::string msg = img.message;
    png_image_free(&img);
    throw std::runtime_error("PNG: " + msg);
  }
  if (c == want) return Image{static_cast<int>(img.height), static_cast<int>(img.width), want, std::move(buf)};
  return to_channels(static_cast<int>(img.height), static_cast<int>(img.width), c, buf.data(), want);
}

// Per output coordinate: the input indices and weights that make it.
struct Tap {
  int first = 0;
  std::vector<float> weights;
};

std::vector<Tap> make_taps(int in, int out) {
  std::vector<Tap> taps(static_cast<size_t>(out));
  double scale = static_cast<double>(in) / out;
  for (int o = 0; o < out; ++o) {
    Tap& t = taps[static_cast<size_t>(o)];
    if (scale >= 1.0) {  // area: overlap of [o*scale, (o+1)*scale) with each input pixel
      double lo = o * scale, hi = (o + 1) * scale;
      int first = static_cast<int>(std::floor(lo)), last = std::min(in - 1, static_cast<int>(std::ceil(hi)) - 1);
      t.first = first;
      for (int i = first; i <= last; ++i) {
        double overlap = std::min<double>(hi, i + 1) - std::max<double>(lo, i);
        t.weights.push_back(static_cast<float>(std::max(0.0, overlap) / scale));
      }
    } else {  // linear between pixel centres
      double x = (o + 0.5) * scale - 0.5;
      int i0 = static_cast<int>(std::floor(x));
      double f = x - i0;
      int a = std::clamp(i0, 0, in - 1), b = std::clamp(i0 + 1, 0, in - 1);
      t.first = std::min(a, b);
      if (a == b) t.weights = {1.f};
      else t.weights = {static_cast<float>(1 - f), static_cast<float>(f)};
    }
  }
  return taps;
}

}  // namespace

Image decode_image(const uint8_t* bytes, size_t size, int channels) {
  if (channels != 1 && channels != 3) throw std::invalid_argument("decode_image: channels must be 1 or 3");
  switch (detect_format(bytes, size)) {
    case ImageFormat::kJpeg: return decode_jpeg(bytes, size, channels);
    case ImageFormat::kPng: return decode_png(bytes, size, channels);
    case ImageFormat::kWebp: return decode_webp(bytes, size, channels);
    default: throw std::runtime_error("not a JPEG, PNG or WebP image (" + std::to_string(size) + " bytes)");
  }
}

Image center_crop_square(const Image& in) {
  int side = std::min(in.height, in.width);
  if (side == in.height && side == in.width) return in;
  int y0 = (in.height - side) / 2, x0 = (in.width - side) / 2;
  Image out{side, side, in.channels, std::vector<uint8_t>(static_cast<size_t>(side) * side * in.channels)};
  size_t row = static_cast<size_t>(side) * in.channels;
  for (int y = 0; y < side; ++y)
    std::memcpy(out.pixels.data() + y * row,
                in.pixels.data() + (static_cast<size_t>(y0 + y) * in.width + x0) * in.channels, row);
  return out;
}

Image resize_area(const Image& in, int oh, int ow) {
  if (oh == in.height && ow == in.width) return in;
  if (oh <= 0 || ow <= 0 || in.height <= 0 || in.width <= 0) throw std::invalid_argument("resize_area: empty image");
  const int c = in.channels;
  auto tx = make_taps(in.width, ow), ty = make_taps(in.height, oh);
  // Horizontal pass into floats (in.height x ow), then vertical pass.
  std::vector<float> mid(static_cast<size_t>(in.height) * ow * c);
  for (int y = 0; y < in.height; ++y) {
    const uint8_t* src = in.pixels.data() + static_cast<size_t>(y) * in.width * c;
    float* dst = mid.data() + static_cast<size_t>(y) * ow * c;
    for (int x = 0; x < ow; ++x) {
      const Tap& t = tx[static_cast<size_t>(x)];
      for (int k = 0; k < c; ++k) {
        float acc = 0;
        for (size_t j = 0; j < t.weights.size(); ++j) acc += t.weights[j] * src[(t.first + j) * c + k];
        dst[x * c + k] = acc;
      }
    }
  }
  Image out{oh, ow, c, std::vector<uint8_t>(static_cast<size_t>(oh) * ow * c)};
  std::vector<float> acc(static_cast<size_t>(ow) * c);
  for (int y = 0; y < oh; ++y) {
    const Tap& t = ty[static_cast<size_t>(y)];
    std::fill(acc.begin(), acc.end(), 0.f);
    for (size_t j = 0; j < t.weights.size(); ++j) {
      const float* row = mid.data() + (t.first + j) * static_cast<size_t>(ow) * c;
      float wgt = t.weights[j];
      for (size_t i = 0; i < acc.size(); ++i) acc[i] += wgt * row[i];
    }
    uint8_t* dst = out.pixels.data() + static_cast<size_t>(y) * ow * c;
    for (size_t i = 0; i < acc.size(); ++i) dst[i] = static_cast<uint8_t>(std::clamp(std::lround(acc[i]), 0L, 255L));
  }
  return out;
}

Image square_resize(const Image& in, int resolution) {
  if (resolution <= 0) return in;
  return resize_area(center_crop_square(in), resolution, resolution);
}

std::string encode_jpeg(const Image& img, int quality) {
  jpeg_compress_struct cinfo{};
  jpeg_error_mgr jerr{};
  cinfo.err = jpeg_std_error(&jerr);
  jpeg_create_compress(&cinfo);
  unsigned char* mem = nullptr;
  unsigned long mem_size = 0;
  jpeg_mem_dest(&cinfo, &mem, &mem_size);
  cinfo.image_width = static_cast<JDIMENSION>(img.width);
  cinfo.image_height = static_cast<JDIMENSION>(img.height);
  cinfo.input_components = img.channels;
  cinfo.in_color_space = img.channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, quality, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = const_cast<uint8_t*>(img.pixels.data()) + static_cast<size_t>(cinfo.next_scanline) * img.width * img.channels;
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  std::string out(reinterpret_cast<char*>(mem), mem_size);
  jpeg_destroy_compress(&cinfo);
  free(mem);
  return out;
}

std::string encode_webp(const Image& img, bool lossless, float quality) {
  if (img.channels != 3) throw std::invalid_argument("encode_webp: RGB only");
  uint8_t* out = nullptr;
  size_t n = lossless ? WebPEncodeLosslessRGB(img.pixels.data(), img.width, img.height, img.width * 3, &out)
                      : WebPEncodeRGB(img.pixels.data(), img.width, img.height, img.width * 3, quality, &out);
  if (n == 0) throw std::runtime_error("encode_webp failed");
  std::string s(reinterpret_cast<char*>(out), n);
  WebPFree(out);
  return s;
}

std::string encode_png_image(const Image& img) { return encode_png(img.pixels.data(), img.height, img.width, img.channels); }

}  // namespace gantry::data
