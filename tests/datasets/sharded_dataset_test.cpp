// ShardedDataset: opening many shards, other HDF5 layouts, and corrupt shards seen in-process
// (read_image and the Loader throw DataError naming the file; HDF5 prints nothing).
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>

#include "convert/pipeline.h"
#include "core/errors.h"
#include "datasets/data_testing.h"
#include "loader/loader.h"
#include "shards/sharded_dataset.h"

namespace gantry::testing {
namespace {

namespace fs = std::filesystem;
using data::Loader;
using data::LoaderOptions;
using data::ShardedDataset;

// 20 synthetic 6x6x3 images in shards of 8, 8, 4.
void make_dataset(const std::string& out, int64_t count = 20, int64_t shard_size = 8) {
  auto src = data::make_synthetic_source(count, 6, 3, 77);
  data::ConvertOptions o;
  o.out = out;
  o.shard_size = shard_size;
  o.progress = false;
  o.workers = 1;
  data::run_conversion(*src, o);
}

std::vector<uint8_t> all_images(const ShardedDataset& ds) {
  std::vector<uint8_t> v(static_cast<size_t>(ds.size() * ds.image_bytes()));
  for (int64_t i = 0; i < ds.size(); ++i) ds.read_image(i, v.data() + i * ds.image_bytes());
  return v;
}

template <typename Fn>
void expect_data_error(Fn fn, const std::string& fragment1, const std::string& fragment2 = "") {
  try {
    fn();
    ADD_FAILURE() << "expected a DataError mentioning " << fragment1;
  } catch (const DataError& e) {
    EXPECT_EQ(e.code(), ExitCode::kData);
    EXPECT_NE(std::string(e.what()).find(fragment1), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(fragment2), std::string::npos) << e.what();
  }
}

TEST(ShardedDataset, SyntheticImagesAreDeterministicAndLabelled) {
  ScratchDir dir("synth");
  make_dataset(dir / "a");
  make_dataset(dir / "b");
  auto a = ShardedDataset::open(dir / "a"), b = ShardedDataset::open(dir / "b");
  EXPECT_EQ(a->manifest().shards.size(), 3u);
  EXPECT_EQ(all_images(*a), all_images(*b));
  for (int64_t i = 0; i < 20; ++i) EXPECT_EQ(a->label(i), i % 10);
  EXPECT_THROW(a->read_image(20, nullptr), std::out_of_range);
  EXPECT_THROW(a->read_image(-1, nullptr), std::out_of_range);
}

TEST(ShardedDataset, OpeningThreeHundredShardsTakesWellUnderASecond) {
  ScratchDir dir("many");
  make_dataset(dir / "ds", 600, 2);  // 300 shards of 2 tiny images
  auto t0 = std::chrono::steady_clock::now();
  auto ds = ShardedDataset::open(dir / "ds");
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(s, 1.0) << "ShardedDataset::open took " << s << " s";
  ASSERT_EQ(ds->manifest().shards.size(), 300u);
  EXPECT_EQ(ds->size(), 600);
  EXPECT_EQ(ds->manifest().shards[299].file, "shard-00299.h5");
  // Indices map to the right shard and slot: compare with a one-shard copy of the same images.
  make_dataset(dir / "one", 600, 600);
  auto one = ShardedDataset::open(dir / "one");
  std::vector<uint8_t> a(static_cast<size_t>(ds->image_bytes())), b(a.size());
  for (int64_t i : {0, 1, 2, 3, 298, 299, 300, 597, 598, 599}) {
    ds->read_image(i, a.data());
    one->read_image(i, b.data());
    EXPECT_EQ(a, b) << "image " << i;
    EXPECT_EQ(ds->label(i), i % 10);
  }
}

// A file rewritten by another tool (contiguous, or chunked with gzip) is read through HDF5.
TEST(ShardedDataset, OtherHdf5LayoutsFallBackToHyperslabReads) {
  ScratchDir dir("layouts");
  make_dataset(dir / "ds");
  auto original = ShardedDataset::open(dir / "ds");
  const auto pixels = all_images(*original);
  EXPECT_TRUE(original->fast_path(0));
  const int64_t img = original->image_bytes();
  std::vector<int64_t> labels0, labels1;
  for (int64_t i = 0; i < 8; ++i) labels0.push_back(original->label(i));
  for (int64_t i = 8; i < 16; ++i) labels1.push_back(original->label(i));
  original.reset();
  rewrite_shard(dir / "ds/shard-00000.h5", ImagesType::kUint8, 8, 6, 6, 3, pixels.data(), labels0.data(), Layout::kContiguous);
  rewrite_shard(dir / "ds/shard-00001.h5", ImagesType::kUint8, 8, 6, 6, 3, pixels.data() + 8 * img, labels1.data(),
                Layout::kDeflate);
  refresh_manifest(dir / "ds");
  auto ds = ShardedDataset::open(dir / "ds");
  EXPECT_FALSE(ds->fast_path(0));
  EXPECT_FALSE(ds->fast_path(1));
  EXPECT_TRUE(ds->fast_path(2));
  EXPECT_EQ(all_images(*ds), pixels);
  for (int64_t i = 0; i < 20; ++i) EXPECT_EQ(ds->label(i), i % 10);
  EXPECT_EQ(data::verify_dataset(dir / "ds", false), 20);
  // The loader with threads reads the fallback shards too.
  LoaderOptions o;
  o.global_batch = 20;
  o.shuffle = false;
  o.workers = 2;
  Loader loader(ds, o);
  Batch b = loader.next();
  auto expected = torch::from_blob(const_cast<uint8_t*>(pixels.data()), {20, 6, 6, 3}, torch::kUInt8)
                      .permute({0, 3, 1, 2})
                      .to(torch::kFloat32)
                      .mul(2.0f / 255.0f)
                      .sub(1.0f);
  EXPECT_TRUE(torch::allclose(b.images, expected, 0, 1e-6));
}

TEST(ShardedDataset, TruncatedShardThrowsDataErrorFromReadImageAndLoader) {
  ScratchDir dir("trunc");
  make_dataset(dir / "ds");
  const std::string shard = dir / "ds/shard-00001.h5";
  ASSERT_EQ(::truncate(shard.c_str(), static_cast<off_t>(fs::file_size(shard) / 2)), 0);
  auto ds = ShardedDataset::open(dir / "ds");  // open reads only the manifest
  std::vector<uint8_t> img(static_cast<size_t>(ds->image_bytes()));
  ds->read_image(0, img.data());  // other shards still work
  expect_data_error([&] { ds->read_image(9, img.data()); }, "shard-00001.h5", "truncated");
  expect_data_error([&] { ds->label(9); }, "shard-00001.h5");
  expect_data_error([&] { ds->check_shard(1); }, "shard-00001.h5");
  for (unsigned workers : {0u, 2u}) {
    LoaderOptions o;
    o.global_batch = 4;
    o.shuffle = false;
    o.workers = workers;
    Loader loader(ds, o);
    loader.next();  // images 0-3
    loader.next();  // images 4-7
    ::testing::internal::CaptureStderr();
    expect_data_error([&] { loader.next(); }, "shard-00001.h5");
    std::string err = ::testing::internal::GetCapturedStderr();
    EXPECT_EQ(err.find("HDF5"), std::string::npos) << err;
  }
  expect_data_error([&] { data::verify_dataset(dir / "ds", false); }, "shard-00001.h5", "truncated");
}

// A shard replaced by a non-HDF5 file of the same size: opened lazily on a loader thread, where
// HDF5's error-stack printing must be off too.
TEST(ShardedDataset, UnreadableShardOnLoaderThreadPrintsNoHdf5Stack) {
  ScratchDir dir("garbage-shard");
  make_dataset(dir / "ds");
  const std::string shard = dir / "ds/shard-00000.h5";
  write_bytes(shard, std::string(fs::file_size(shard), 'x'));
  refresh_manifest(dir / "ds");
  auto ds = ShardedDataset::open(dir / "ds");
  LoaderOptions o;
  o.global_batch = 4;
  o.shuffle = false;
  o.workers = 2;
  ::testing::internal::CaptureStderr();
  {
    Loader loader(ds, o);
    expect_data_error([&] { loader.next(); }, "shard-00000.h5", "not a readable HDF5 file");
  }
  std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(err.find("HDF5"), std::string::npos) << err;
}

TEST(ShardedDataset, MissingShardAndBadManifestAreDataErrors) {
  ScratchDir dir("missing");
  make_dataset(dir / "ds");
  fs::remove(dir / "ds/shard-00002.h5");
  auto ds = ShardedDataset::open(dir / "ds");
  std::vector<uint8_t> img(static_cast<size_t>(ds->image_bytes()));
  expect_data_error([&] { ds->read_image(19, img.data()); }, "shard-00002.h5", "missing");
  expect_data_error([] { ShardedDataset::open("/nonexistent/gantry/dataset"); }, "/nonexistent/gantry/dataset");
  fs::remove(dir / "ds/manifest.json");
  expect_data_error([&] { ShardedDataset::open(dir / "ds"); }, "manifest.json", "missing");
  write_bytes(dir / "ds/manifest.json", "{\"version\": 1, \"shape\": [6, 6");
  expect_data_error([&] { ShardedDataset::open(dir / "ds"); }, "manifest.json", "JSON");
  write_bytes(dir / "ds/manifest.json", "[1, 2, 3]");
  expect_data_error([&] { ShardedDataset::open(dir / "ds"); }, "manifest.json");
  write_bytes(dir / "ds/manifest.json",
              R"({"version": 1, "shape": [6, 6, 3], "count": 21, "has_labels": true, "shards": [)"
              R"({"file": "shard-00000.h5", "count": 20, "bytes": 1, "checksum": "crc32:00000000"}]})");
  expect_data_error([&] { ShardedDataset::open(dir / "ds"); }, "manifest.json", "add up");
  write_bytes(dir / "ds/manifest.json",
              R"({"version": 1, "shape": [6, 0, 3], "count": 20, "has_labels": true, "shards": []})");
  expect_data_error([&] { ShardedDataset::open(dir / "ds"); }, "manifest.json", "shape");
  write_bytes(dir / "ds/manifest.json",
              R"({"version": 1, "shape": [6, 6, 3], "count": 20, "has_labels": true, "shards": [)"
              R"({"file": "../../etc/passwd", "count": 20, "bytes": 1, "checksum": "crc32:00000000"}]})");
  expect_data_error([&] { ShardedDataset::open(dir / "ds"); }, "manifest.json", "bad shard entry");
  write_bytes(dir / "ds/manifest.json",
              R"({"version": 99, "shape": [6, 6, 3], "count": 0, "has_labels": true, "shards": []})");
  expect_data_error([&] { ShardedDataset::open(dir / "ds"); }, "manifest.json", "version 99");
}

TEST(ShardedDataset, WrongDtypeOrShapeIsNamed) {
  ScratchDir dir("dtype");
  struct Case {
    ImagesType type;
    int64_t n, h, w, c;
    const char* fragment;
  };
  for (const Case& k : {Case{ImagesType::kUint16, 8, 6, 6, 3, "not uint8"}, Case{ImagesType::kFloat32, 8, 6, 6, 3, "not uint8"},
                        Case{ImagesType::kUint8, 8, 6, 7, 3, "shape"}, Case{ImagesType::kUint8, 7, 6, 6, 3, "shape"}}) {
    std::string ds_dir = dir / ("ds-" + std::string(k.fragment).substr(0, 3) + std::to_string(k.w) + std::to_string(k.n) +
                                std::to_string(static_cast<int>(k.type)));
    make_dataset(ds_dir);
    rewrite_shard(ds_dir + "/shard-00000.h5", k.type, k.n, k.h, k.w, k.c);
    refresh_manifest(ds_dir);
    auto ds = ShardedDataset::open(ds_dir);
    std::vector<uint8_t> img(static_cast<size_t>(ds->image_bytes()));
    expect_data_error([&] { ds->read_image(0, img.data()); }, "shard-00000.h5", k.fragment);
    expect_data_error([&] { data::verify_dataset(ds_dir, false); }, "shard-00000.h5", k.fragment);
  }
}

}  // namespace
}  // namespace gantry::testing

namespace gantry::testing {
namespace {

// Whole-page images (64x64x3 = 3 pages) are page-aligned in the shard and still read back exactly
// through the direct-pread path, whose stride is then taken from the file, not assumed.
TEST(ShardedDataset, PageAlignedImagesReadBackExactly) {
  ScratchDir dir("aligned");
  data::ConvertOptions o;
  o.out = dir / "ds";
  o.shard_size = 4;
  o.progress = false;
  auto source = data::make_synthetic_source(10, 64, 3, 5);
  data::run_conversion(*source, o);
  auto ds = data::ShardedDataset::open(o.out);
  ASSERT_EQ(ds->size(), 10);
  auto expected = data::make_synthetic_source(10, 64, 3, 5);
  data::Record r;
  std::vector<uint8_t> got(64 * 64 * 3);
  for (int64_t i = 0; expected->next(r); ++i) {
    ds->read_image(i, got.data());
    ASSERT_EQ(std::string(got.begin(), got.end()), r.bytes) << "image " << i;
    EXPECT_EQ(ds->label(i), i % 10);
  }
  for (size_t s = 0; s < ds->manifest().shards.size(); ++s) EXPECT_TRUE(ds->fast_path(s)) << "shard " << s;
}

}  // namespace
}  // namespace gantry::testing
