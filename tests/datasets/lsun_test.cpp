// LSUN LMDB converter on small databases built here with liblmdb: key order, decode of WebP (lossy,
// lossless) and JPEG, center crop, area resize, undecodable records.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>

#include "convert/pipeline.h"
#include "core/errors.h"
#include "datasets/data_testing.h"
#include "shards/sharded_dataset.h"

namespace gantry::testing {
namespace {

namespace fs = std::filesystem;
using data::Image;
using data::ShardedDataset;

enum class Codec { kWebpLossy, kWebpLossless, kJpeg };

std::string encode(const Image& img, Codec codec) {
  switch (codec) {
    case Codec::kWebpLossy: return data::encode_webp(img, false, 90.f);
    case Codec::kWebpLossless: return data::encode_webp(img, true);
    default: return data::encode_jpeg(img, 95);
  }
}

struct Entry {
  std::string key;
  uint8_t color[3];
  Codec codec;
};

// Ten records with distinct constant colours, mixed codecs, non-square sizes (96x80 and 80x120).
std::vector<Entry> make_entries() {
  std::vector<Entry> e;
  for (int i = 0; i < 10; ++i) {
    Entry x;
    x.key = hex_key(static_cast<uint64_t>(i));
    x.color[0] = static_cast<uint8_t>(20 + 23 * i);
    x.color[1] = static_cast<uint8_t>(230 - 19 * i);
    x.color[2] = static_cast<uint8_t>((60 + 71 * i) % 256);
    x.codec = static_cast<Codec>(i % 3);
    e.push_back(x);
  }
  return e;
}

std::vector<std::pair<std::string, std::string>> encode_entries(const std::vector<Entry>& entries) {
  std::vector<std::pair<std::string, std::string>> records;
  for (size_t i = 0; i < entries.size(); ++i) {
    const Entry& x = entries[i];
    Image img = i % 2 == 0 ? solid(80, 96, x.color[0], x.color[1], x.color[2])    // H 80, W 96
                           : solid(120, 80, x.color[0], x.color[1], x.color[2]);  // H 120, W 80
    records.emplace_back(x.key, encode(img, x.codec));
  }
  return records;
}

TEST(LsunConvert, KeepsKeyOrderAndColoursAtDefaultResolution64) {
  ScratchDir dir("lsun");
  auto entries = make_entries();
  for (const auto& x : entries) ASSERT_EQ(x.key.size(), 40u);
  write_lmdb(dir / "db", encode_entries(entries));
  auto r = run_gantry("data convert --format lsun --lmdb " + (dir / "db") + " --out " + (dir / "out") +
                      " --shard-size 4 --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto ds = ShardedDataset::open(dir / "out");
  ASSERT_EQ(ds->size(), 10);
  EXPECT_EQ(ds->manifest().height, 64);
  EXPECT_EQ(ds->manifest().width, 64);
  EXPECT_EQ(ds->manifest().channels, 3);
  EXPECT_FALSE(ds->manifest().has_labels);
  EXPECT_NE(ds->manifest().source.find("lsun-lmdb:"), std::string::npos);
  // LMDB iterates keys in byte order; the shards must follow it.
  std::vector<Entry> sorted = entries;
  std::sort(sorted.begin(), sorted.end(), [](const Entry& a, const Entry& b) { return a.key < b.key; });
  ASSERT_NE(sorted.front().key, entries.front().key) << "test keys happen to be inserted in order";
  std::vector<uint8_t> img(static_cast<size_t>(ds->image_bytes()));
  for (int64_t i = 0; i < 10; ++i) {
    const Entry& x = sorted[static_cast<size_t>(i)];
    ds->read_image(i, img.data());
    auto mean = mean_color(img.data(), 64 * 64, 3);
    double tol = x.codec == Codec::kWebpLossless ? 0.0 : 4.0;
    for (int c = 0; c < 3; ++c)
      EXPECT_NEAR(mean[static_cast<size_t>(c)], x.color[c], tol) << "image " << i << " key " << x.key << " channel " << c;
    if (x.codec == Codec::kWebpLossless) {
      for (size_t p = 0; p < img.size(); ++p) ASSERT_EQ(img[p], x.color[p % 3]) << "image " << i << " byte " << p;
    }
  }
}

// Center crop: borders outside the centred square have another colour and must not leak in.
TEST(LsunConvert, CenterCropKeepsTheCentredSquareExactly) {
  ScratchDir dir("crop");
  // Wide 96x80 (W x H): 8-column borders; tall 80x120: 20-row borders. Centre: a pattern.
  auto pattern = [](int y, int x, int c) { return static_cast<uint8_t>((y * 3 + x * 5 + c * 80) % 200 + 20); };
  Image wide = solid(80, 96, 255, 0, 0), tall = solid(120, 80, 0, 0, 255);
  for (int y = 0; y < 80; ++y)
    for (int x = 0; x < 80; ++x)
      for (int c = 0; c < 3; ++c) {
        wide.pixels[static_cast<size_t>((y * 96 + x + 8) * 3 + c)] = pattern(y, x, c);
        tall.pixels[static_cast<size_t>(((y + 20) * 80 + x) * 3 + c)] = pattern(y, x, c);
      }
  write_lmdb(dir / "db", {{hex_key(1), data::encode_webp(wide, true)}, {hex_key(2), data::encode_webp(tall, true)}});
  // Resolution 80: crop only (no resize) → exactly the centre pattern.
  auto src = data::make_lmdb_source(dir / "db", 0);
  data::ConvertOptions o;
  o.out = dir / "out80";
  o.resolution = 80;
  o.progress = false;
  data::run_conversion(*src, o);
  auto ds = ShardedDataset::open(dir / "out80");
  ASSERT_EQ(ds->size(), 2);
  std::vector<uint8_t> img(80 * 80 * 3);
  for (int64_t i = 0; i < 2; ++i) {
    ds->read_image(i, img.data());
    for (int y = 0; y < 80; ++y)
      for (int x = 0; x < 80; ++x)
        for (int c = 0; c < 3; ++c)
          ASSERT_EQ(img[static_cast<size_t>((y * 80 + x) * 3 + c)], pattern(y, x, c)) << "image " << i << " at " << y << "," << x;
  }
  // Default 64 via the CLI: a solid centre stays solid (no border colour in any output pixel).
  Image wide2 = solid(80, 96, 255, 0, 0);
  for (int y = 0; y < 80; ++y)
    for (int x = 8; x < 88; ++x) {
      uint8_t* p = &wide2.pixels[static_cast<size_t>((y * 96 + x) * 3)];
      p[0] = 10;
      p[1] = 200;
      p[2] = 30;
    }
  write_lmdb(dir / "db2", {{hex_key(3), data::encode_webp(wide2, true)}});
  auto r = run_gantry("data convert --format lsun --lmdb " + (dir / "db2") + " --out " + (dir / "out64") + " --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto ds64 = ShardedDataset::open(dir / "out64");
  ASSERT_EQ(ds64->manifest().height, 64);
  std::vector<uint8_t> small(64 * 64 * 3);
  ds64->read_image(0, small.data());
  for (size_t p = 0; p < small.size(); p += 3) {
    ASSERT_EQ(small[p], 10) << "pixel " << p / 3;
    ASSERT_EQ(small[p + 1], 200) << "pixel " << p / 3;
    ASSERT_EQ(small[p + 2], 30) << "pixel " << p / 3;
  }
}

// Area filter: halving a lossless input gives exactly the rounded mean of each 2x2 block.
TEST(LsunConvert, AreaFilterDownscaleByTwoIsTheBlockMean) {
  ScratchDir dir("area");
  Image big{128, 128, 3, std::vector<uint8_t>(128 * 128 * 3)};
  uint64_t s = 12345;
  for (auto& v : big.pixels) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    v = static_cast<uint8_t>(s >> 56);
  }
  write_lmdb(dir / "db", {{hex_key(7), data::encode_webp(big, true)}});
  auto r = run_gantry("data convert --format lsun --lmdb " + (dir / "db") + " --out " + (dir / "out") + " --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto ds = ShardedDataset::open(dir / "out");
  std::vector<uint8_t> img(64 * 64 * 3);
  ds->read_image(0, img.data());
  int exact_halves = 0;
  for (int y = 0; y < 64; ++y)
    for (int x = 0; x < 64; ++x)
      for (int c = 0; c < 3; ++c) {
        auto px = [&](int yy, int xx) { return static_cast<int>(big.pixels[static_cast<size_t>((yy * 128 + xx) * 3 + c)]); };
        int sum = px(2 * y, 2 * x) + px(2 * y, 2 * x + 1) + px(2 * y + 1, 2 * x) + px(2 * y + 1, 2 * x + 1);
        long expected = std::lround(sum / 4.0);  // halves round away from zero
        exact_halves += sum % 4 == 2;
        ASSERT_EQ(img[static_cast<size_t>((y * 64 + x) * 3 + c)], expected) << "at " << y << "," << x << " c" << c;
      }
  EXPECT_GT(exact_halves, 100);  // the rounding of .5 was exercised
}

// A non-integer scale (96 → 64) against a double-precision box filter.
TEST(ImageResize, AreaFilterMatchesAReferenceBoxFilter) {
  Image in{96, 96, 1, std::vector<uint8_t>(96 * 96)};
  for (int y = 0; y < 96; ++y)
    for (int x = 0; x < 96; ++x) in.pixels[static_cast<size_t>(y * 96 + x)] = static_cast<uint8_t>((x * x + 7 * y) % 256);
  Image out = data::resize_area(in, 64, 64);
  ASSERT_EQ(out.height, 64);
  ASSERT_EQ(out.width, 64);
  const double scale = 1.5;
  auto weight = [&](int o, int i) {
    double lo = o * scale, hi = (o + 1) * scale;
    return std::max(0.0, std::min(hi, i + 1.0) - std::max(lo, static_cast<double>(i))) / scale;
  };
  for (int y = 0; y < 64; ++y)
    for (int x = 0; x < 64; ++x) {
      double acc = 0;
      for (int iy = 0; iy < 96; ++iy) {
        double wy = weight(y, iy);
        if (wy == 0) continue;
        for (int ix = 0; ix < 96; ++ix) acc += wy * weight(x, ix) * in.pixels[static_cast<size_t>(iy * 96 + ix)];
      }
      ASSERT_NEAR(out.pixels[static_cast<size_t>(y * 64 + x)], acc, 0.5001) << y << "," << x;
    }
  // Constant images stay constant at any scale, up or down.
  Image flat = solid(37, 53, 17, 130, 250);
  for (auto [h, w] : {std::pair{20, 20}, std::pair{64, 64}, std::pair{37, 10}}) {
    Image r = data::resize_area(flat, h, w);
    for (size_t p = 0; p < r.pixels.size(); ++p) ASSERT_EQ(r.pixels[p], flat.pixels[p % 3]);
  }
}

TEST(ImageCodecs, RoundTripAndFormatDetection) {
  Image img{12, 9, 3, std::vector<uint8_t>(12 * 9 * 3)};
  for (size_t i = 0; i < img.pixels.size(); ++i) img.pixels[i] = static_cast<uint8_t>(i * 7);
  std::string png = data::encode_png_image(img), webp = data::encode_webp(img, true), jpg = data::encode_jpeg(img);
  auto bytes = [](const std::string& s) { return reinterpret_cast<const uint8_t*>(s.data()); };
  EXPECT_EQ(data::detect_format(bytes(png), png.size()), data::ImageFormat::kPng);
  EXPECT_EQ(data::detect_format(bytes(webp), webp.size()), data::ImageFormat::kWebp);
  EXPECT_EQ(data::detect_format(bytes(jpg), jpg.size()), data::ImageFormat::kJpeg);
  for (const std::string* s : {&png, &webp}) {
    Image d = data::decode_image(bytes(*s), s->size(), 3);
    EXPECT_EQ(d.height, 12);
    EXPECT_EQ(d.width, 9);
    EXPECT_EQ(d.pixels, img.pixels);
  }
  Image j = data::decode_image(bytes(jpg), jpg.size(), 1);
  EXPECT_EQ(j.channels, 1);
  EXPECT_EQ(j.pixels.size(), 12u * 9u);
  std::string garbage = "definitely not an image";
  EXPECT_THROW(data::decode_image(bytes(garbage), garbage.size(), 3), std::runtime_error);
  std::string cut = jpg.substr(0, 20);
  EXPECT_THROW(data::decode_image(bytes(cut), cut.size(), 3), std::runtime_error);
  std::string cut_webp = webp.substr(0, 30);
  EXPECT_THROW(data::decode_image(bytes(cut_webp), cut_webp.size(), 3), std::runtime_error);
}

// One garbage record of ten: named and skipped with --max-bad 0.2; a failure (exit 3, nothing left
// behind) with the default --max-bad.
TEST(LsunConvert, GarbageRecordIsNamedSkippedOrFatal) {
  ScratchDir dir("garbage");
  auto entries = make_entries();
  auto records = encode_entries(entries);
  records[4].second = "this is not an image at all, just some bytes";
  const std::string bad_key = records[4].first;
  write_lmdb(dir / "db", records);

  auto ok = run_gantry_split("data convert --format lsun --lmdb " + (dir / "db") + " --out " + (dir / "out") +
                             " --max-bad 0.2 --quiet");
  ASSERT_EQ(ok.exit_code, 0) << ok.out << ok.err;
  EXPECT_NE(ok.err.find(bad_key), std::string::npos) << "bad key not named: " << ok.err;
  EXPECT_NE((ok.out + ok.err).find("1 undecodable"), std::string::npos) << ok.out;
  auto ds = ShardedDataset::open(dir / "out");
  EXPECT_EQ(ds->size(), 9);
  EXPECT_TRUE(ds->fast_path(0));  // the shard rewritten at its exact size keeps the fast layout
  EXPECT_EQ(data::verify_dataset(dir / "out", false), 9);
  // Remaining records in key order, the bad one left out.
  std::vector<Entry> sorted;
  for (const auto& e : entries)
    if (e.key != bad_key) sorted.push_back(e);
  std::sort(sorted.begin(), sorted.end(), [](const Entry& a, const Entry& b) { return a.key < b.key; });
  std::vector<uint8_t> img(64 * 64 * 3);
  for (int64_t i = 0; i < 9; ++i) {
    ds->read_image(i, img.data());
    auto mean = mean_color(img.data(), 64 * 64, 3);
    for (int c = 0; c < 3; ++c) EXPECT_NEAR(mean[static_cast<size_t>(c)], sorted[static_cast<size_t>(i)].color[c], 4.0) << i;
  }

  auto fail = run_gantry_split("data convert --format lsun --lmdb " + (dir / "db") + " --out " + (dir / "out2") + " --quiet");
  EXPECT_EQ(fail.exit_code, 3) << fail.out << fail.err;
  EXPECT_NE(fail.err.find(bad_key), std::string::npos) << fail.err;
  EXPECT_NE(fail.err.find("gantry: error: "), std::string::npos) << fail.err;
  EXPECT_NE(fail.err.find("--max-bad"), std::string::npos) << fail.err;
  EXPECT_FALSE(fs::exists(dir / "out2"));
  EXPECT_TRUE(entries_starting_with(dir.path(), "out2").empty()) << "left behind: " << entries_starting_with(dir.path(), "out2")[0];
}

TEST(LsunConvert, LimitAndMissingDatabase) {
  ScratchDir dir("lsunlimit");
  write_lmdb(dir / "db", encode_entries(make_entries()));
  auto r = run_gantry("data convert --format lsun --lmdb " + (dir / "db") + " --out " + (dir / "out") +
                      " --limit 3 --resolution 16 --channels 1 --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto ds = ShardedDataset::open(dir / "out");
  EXPECT_EQ(ds->size(), 3);
  EXPECT_EQ(ds->manifest().height, 16);
  EXPECT_EQ(ds->manifest().channels, 1);
  auto missing = run_gantry_split("data convert --format lsun --lmdb " + (dir / "nope") + " --out " + (dir / "o2") + " --quiet");
  EXPECT_EQ(missing.exit_code, 3);
  EXPECT_NE(missing.err.find("nope"), std::string::npos) << missing.err;
  write_bytes(dir / "notdb", "plain text, not LMDB");
  auto notdb = run_gantry_split("data convert --format lsun --lmdb " + (dir / "notdb") + " --out " + (dir / "o3") + " --quiet");
  EXPECT_EQ(notdb.exit_code, 3) << notdb.err;
  EXPECT_NE(notdb.err.find("notdb"), std::string::npos) << notdb.err;
}

}  // namespace
}  // namespace gantry::testing

namespace gantry::testing {
namespace {

// A JPEG cut short inside its image data is a bad record, not an image with a gray bottom.
TEST(ImageDecode, TruncatedJpegIsRejected) {
  data::Image img{48, 64, 3, std::vector<uint8_t>(48 * 64 * 3)};
  for (size_t i = 0; i < img.pixels.size(); ++i) img.pixels[i] = static_cast<uint8_t>((i * 37) % 251);
  std::string jpeg = data::encode_jpeg(img, 90);
  auto whole = data::decode_image(reinterpret_cast<const uint8_t*>(jpeg.data()), jpeg.size(), 3);
  EXPECT_EQ(whole.height, 48);
  std::string cut = jpeg.substr(0, jpeg.size() * 2 / 3);
  EXPECT_THROW(data::decode_image(reinterpret_cast<const uint8_t*>(cut.data()), cut.size(), 3), std::runtime_error);
}

}  // namespace
}  // namespace gantry::testing
