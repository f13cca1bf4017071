// idx converter → shards → ShardedDataset / Loader returns exactly the source pixels and labels.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <cstring>
#include <filesystem>
#include <set>

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

constexpr int64_t kN = 10;
constexpr int kRows = 5, kCols = 7;  // non-square: catches H/W swaps

// Source pixels: every value distinct per position, 0 and 255 included, rows not mirror-symmetric.
std::vector<uint8_t> source_pixels() {
  std::vector<uint8_t> p(static_cast<size_t>(kN * kRows * kCols));
  for (int64_t i = 0; i < kN; ++i)
    for (int y = 0; y < kRows; ++y)
      for (int x = 0; x < kCols; ++x) p[static_cast<size_t>((i * kRows + y) * kCols + x)] = static_cast<uint8_t>((i * 37 + y * 11 + x * 29) % 256);
  p[0] = 0;
  p[1] = 255;
  return p;
}

std::vector<uint8_t> source_labels() {
  std::vector<uint8_t> l;
  for (int64_t i = 0; i < kN; ++i) l.push_back(static_cast<uint8_t>((i * 7 + 3) % 10));
  return l;
}

struct IdxFiles {
  std::string images, labels;
};

// Writes the source as idx files, gzipped or plain.
IdxFiles write_idx(const ScratchDir& dir, bool gz) {
  IdxFiles f{dir / (gz ? "images-idx3-ubyte.gz" : "images-idx3-ubyte"), dir / (gz ? "labels-idx1-ubyte.gz" : "labels-idx1-ubyte")};
  std::string images = idx_images(kN, kRows, kCols, source_pixels()), labels = idx_labels(source_labels());
  if (gz) {
    write_gz(f.images, images);
    write_gz(f.labels, labels);
  } else {
    write_bytes(f.images, images);
    write_bytes(f.labels, labels);
  }
  return f;
}

data::ConvertOptions options(const std::string& out, int64_t shard_size) {
  data::ConvertOptions o;
  o.out = out;
  o.shard_size = shard_size;
  o.progress = false;
  o.workers = 2;
  return o;
}

void expect_matches_source(const ShardedDataset& ds) {
  const auto pixels = source_pixels();
  const auto labels = source_labels();
  ASSERT_EQ(ds.size(), kN);
  ASSERT_EQ(ds.manifest().height, kRows);
  ASSERT_EQ(ds.manifest().width, kCols);
  ASSERT_EQ(ds.manifest().channels, 1);
  ASSERT_TRUE(ds.manifest().has_labels);
  std::vector<uint8_t> img(static_cast<size_t>(ds.image_bytes()));
  for (int64_t i = 0; i < kN; ++i) {
    ds.read_image(i, img.data());
    EXPECT_EQ(0, std::memcmp(img.data(), pixels.data() + i * kRows * kCols, img.size())) << "image " << i;
    EXPECT_EQ(ds.label(i), labels[static_cast<size_t>(i)]) << "label " << i;
  }
}

float to_float(uint8_t v) { return static_cast<float>(v) * 2.0f / 255.0f - 1.0f; }

// Expects batch sample k to be source image `idx` (optionally mirrored), as float NCHW.
void expect_sample(const Batch& b, int64_t k, int64_t idx, bool mirrored) {
  const auto pixels = source_pixels();
  torch::Tensor img = b.images[k];
  ASSERT_EQ(img.sizes(), (c10::IntArrayRef{1, kRows, kCols}));
  auto acc = img.accessor<float, 3>();
  for (int y = 0; y < kRows; ++y)
    for (int x = 0; x < kCols; ++x) {
      int sx = mirrored ? kCols - 1 - x : x;
      uint8_t v = pixels[static_cast<size_t>((idx * kRows + y) * kCols + sx)];
      ASSERT_NEAR(acc[0][y][x], to_float(v), 1e-6) << "sample " << k << " (image " << idx << ") at " << y << "," << x;
    }
  EXPECT_EQ(b.labels[k].item<int64_t>(), source_labels()[static_cast<size_t>(idx)]);
}

// Finds which source image (and whether mirrored) a batch sample is; -1 if none.
int64_t identify(const Batch& b, int64_t k, bool* mirrored) {
  const auto pixels = source_pixels();
  torch::Tensor img = b.images[k];
  auto acc = img.accessor<float, 3>();
  for (int64_t idx = 0; idx < kN; ++idx)
    for (int m = 0; m < 2; ++m) {
      bool same = true;
      for (int y = 0; y < kRows && same; ++y)
        for (int x = 0; x < kCols && same; ++x)
          same = std::abs(acc[0][y][x] - to_float(pixels[static_cast<size_t>((idx * kRows + y) * kCols + (m ? kCols - 1 - x : x))])) < 1e-6;
      if (same) {
        *mirrored = m == 1;
        return idx;
      }
    }
  return -1;
}

class IdxRoundTrip : public ::testing::TestWithParam<bool> {};  // param: gzipped

TEST_P(IdxRoundTrip, ShardsHoldExactlyTheSourcePixelsAndLabels) {
  ScratchDir dir("idx");
  IdxFiles f = write_idx(dir, GetParam());
  auto src = data::make_idx_source(f.images, f.labels, 0);
  EXPECT_EQ(src->total(), kN);
  auto r = data::run_conversion(*src, options(dir / "out", 4));
  EXPECT_EQ(r.bad, 0);
  EXPECT_EQ(r.manifest.count, kN);
  ASSERT_EQ(r.manifest.shards.size(), 3u);  // 4 + 4 + 2
  EXPECT_EQ(r.manifest.shards[2].count, 2);
  EXPECT_NE(r.manifest.source.find("idx:"), std::string::npos);
  auto ds = ShardedDataset::open(dir / "out");
  expect_matches_source(*ds);
  for (size_t s = 0; s < 3; ++s) EXPECT_TRUE(ds->fast_path(s)) << "shard " << s;
  EXPECT_EQ(data::verify_dataset(dir / "out", false), kN);
}

TEST_P(IdxRoundTrip, CliConversionMatchesTheSource) {
  ScratchDir dir("idxcli");
  IdxFiles f = write_idx(dir, GetParam());
  auto r = run_gantry("data convert --format idx --images " + f.images + " --labels " + f.labels + " --out " +
                      (dir / "out") + " --shard-size 3 --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("10 images [5,7,1] in 4 shards"), std::string::npos) << r.output;
  auto ds = ShardedDataset::open(dir / "out");
  EXPECT_EQ(ds->manifest().shards.size(), 4u);
  expect_matches_source(*ds);
}

INSTANTIATE_TEST_SUITE_P(PlainAndGzip, IdxRoundTrip, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& p) { return p.param ? std::string("Gzip") : std::string("Plain"); });

// Source labels are (7i + 3) mod 10: 3 0 7 4 1 8 5 2 9 6 for images 0..9.
TEST(IdxRoundTrip, ClassFilterKeepsOnlyThoseLabelsInFileOrder) {
  ScratchDir dir("idxclasses");
  IdxFiles f = write_idx(dir, true);
  const auto pixels = source_pixels();
  auto src = data::make_idx_source(f.images, f.labels, 0, {7, 3});
  EXPECT_EQ(src->total(), 2);
  auto r = data::run_conversion(*src, options(dir / "out", 4));
  EXPECT_NE(r.manifest.source.find(" classes 7,3"), std::string::npos) << r.manifest.source;
  auto ds = ShardedDataset::open(dir / "out");
  ASSERT_EQ(ds->size(), 2);
  std::vector<uint8_t> img(static_cast<size_t>(ds->image_bytes()));
  for (auto [k, source] : {std::pair<int64_t, int64_t>{0, 0}, {1, 2}}) {  // images 0 (label 3) and 2 (label 7)
    ds->read_image(k, img.data());
    EXPECT_EQ(0, std::memcmp(img.data(), pixels.data() + source * kRows * kCols, img.size())) << "image " << k;
    EXPECT_EQ(ds->label(k), source_labels()[static_cast<size_t>(source)]);
  }
  EXPECT_EQ(data::make_idx_source(f.images, f.labels, 1, {7, 3})->total(), 1);  // the limit counts kept images
  EXPECT_THROW(data::make_idx_source(f.images, f.labels, 0, {11}), DataError);

  // The CLI: --classes 9,8 keeps images 5 (label 8) and 8 (label 9); without labels or with a bad list, exit 2.
  auto cli = run_gantry("data convert --format idx --images " + f.images + " --labels " + f.labels +
                        " --classes 9,8 --out " + (dir / "cli") + " --quiet");
  ASSERT_EQ(cli.exit_code, 0) << cli.output;
  EXPECT_NE(cli.output.find("2 images [5,7,1]"), std::string::npos) << cli.output;
  auto cds = ShardedDataset::open(dir / "cli");
  EXPECT_EQ(cds->label(0), 8);
  EXPECT_EQ(cds->label(1), 9);
  for (const char* bad :
       {" --classes 7", " --labels L --classes 7,x", " --labels L --classes 300", " --labels L --classes 7,"}) {
    std::string args = bad;
    if (auto at = args.find(" L "); at != std::string::npos) args.replace(at, 3, " " + f.labels + " ");
    auto e =
        run_gantry("data convert --format idx --images " + f.images + args + " --out " + (dir / "bad") + " --quiet");
    EXPECT_EQ(e.exit_code, 2) << bad << ": " << e.output;
    EXPECT_NE(e.output.find("--classes: "), std::string::npos) << e.output;
  }
}

TEST(IdxRoundTrip, WithoutLabelsFileHasNoLabels) {
  ScratchDir dir("idxnolab");
  IdxFiles f = write_idx(dir, false);
  auto src = data::make_idx_source(f.images, "", 0);
  auto r = data::run_conversion(*src, options(dir / "out", 100));
  EXPECT_FALSE(r.manifest.has_labels);
  auto ds = ShardedDataset::open(dir / "out");
  LoaderOptions o;
  o.global_batch = 5;
  o.workers = 0;
  o.shuffle = false;
  Loader loader(ds, o);
  Batch b = loader.next();
  EXPECT_FALSE(b.labels.defined());
  EXPECT_EQ(b.images.sizes(), (c10::IntArrayRef{5, 1, kRows, kCols}));
}

TEST(IdxRoundTrip, ShardsAreChunkedOneImagePerChunkUnfiltered) {
  ScratchDir dir("chunks");
  IdxFiles f = write_idx(dir, true);
  auto src = data::make_idx_source(f.images, f.labels, 0);
  data::run_conversion(*src, options(dir / "out", 4));
  // Plain HDF5 C API, as h5py would see it.
  for (const char* name : {"shard-00000.h5", "shard-00002.h5"}) {
    std::string path = dir / ("out/" + std::string(name));
    hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    ASSERT_GE(file, 0) << path;
    hid_t images = H5Dopen2(file, "images", H5P_DEFAULT);
    ASSERT_GE(images, 0);
    hid_t type = H5Dget_type(images);
    EXPECT_EQ(H5Tget_class(type), H5T_INTEGER);
    EXPECT_EQ(H5Tget_size(type), 1u);
    EXPECT_EQ(H5Tget_sign(type), H5T_SGN_NONE);
    hid_t space = H5Dget_space(images);
    hsize_t dims[4] = {0, 0, 0, 0};
    ASSERT_EQ(H5Sget_simple_extent_ndims(space), 4);
    H5Sget_simple_extent_dims(space, dims, nullptr);
    EXPECT_EQ(dims[0], std::string(name) == "shard-00000.h5" ? 4u : 2u);
    EXPECT_EQ(dims[1], static_cast<hsize_t>(kRows));
    EXPECT_EQ(dims[2], static_cast<hsize_t>(kCols));
    EXPECT_EQ(dims[3], 1u);
    hid_t dcpl = H5Dget_create_plist(images);
    EXPECT_EQ(H5Pget_layout(dcpl), H5D_CHUNKED);
    hsize_t chunk[4] = {0, 0, 0, 0};
    EXPECT_EQ(H5Pget_chunk(dcpl, 4, chunk), 4);
    EXPECT_EQ(chunk[0], 1u);
    EXPECT_EQ(chunk[1], static_cast<hsize_t>(kRows));
    EXPECT_EQ(chunk[2], static_cast<hsize_t>(kCols));
    EXPECT_EQ(chunk[3], 1u);
    EXPECT_EQ(H5Pget_nfilters(dcpl), 0);
    hid_t labels = H5Dopen2(file, "labels", H5P_DEFAULT);
    ASSERT_GE(labels, 0);
    hid_t ltype = H5Dget_type(labels);
    EXPECT_EQ(H5Tget_class(ltype), H5T_INTEGER);
    EXPECT_EQ(H5Tget_size(ltype), 8u);
    EXPECT_EQ(H5Tget_sign(ltype), H5T_SGN_2);
    H5Tclose(ltype);
    H5Dclose(labels);
    H5Pclose(dcpl);
    H5Sclose(space);
    H5Tclose(type);
    H5Dclose(images);
    H5Fclose(file);
  }
  auto ds = ShardedDataset::open(dir / "out");
  EXPECT_TRUE(ds->fast_path(0));
  EXPECT_TRUE(ds->fast_path(2));
}

// Loader over the converted idx: exact floats, NCHW, every worker count, shuffle off and on.
TEST(IdxRoundTrip, LoaderReturnsSourcePixelsAsFloatNCHW) {
  ScratchDir dir("idxload");
  IdxFiles f = write_idx(dir, true);
  auto src = data::make_idx_source(f.images, f.labels, 0);
  data::run_conversion(*src, options(dir / "out", 4));
  auto ds = ShardedDataset::open(dir / "out");
  for (unsigned workers : {0u, 2u}) {
    SCOPED_TRACE("workers " + std::to_string(workers));
    // Shuffle off: batch k holds images 2k, 2k+1; the next epoch starts over.
    LoaderOptions o;
    o.global_batch = 2;
    o.workers = workers;
    o.shuffle = false;
    o.seed = 3;
    Loader loader(ds, o);
    for (int64_t step = 0; step < 7; ++step) {
      Batch b = loader.next();
      ASSERT_EQ(b.images.sizes(), (c10::IntArrayRef{2, 1, kRows, kCols}));
      ASSERT_EQ(b.images.scalar_type(), torch::kFloat32);
      ASSERT_EQ(b.labels.scalar_type(), torch::kInt64);
      int64_t first = (step % 5) * 2;
      EXPECT_EQ(b.position.epoch, step / 5);
      EXPECT_EQ(b.position.index, first);
      expect_sample(b, 0, first, false);
      expect_sample(b, 1, first + 1, false);
    }
    // Shuffle on: an epoch visits every image once, in the sampler's order.
    o.shuffle = true;
    Loader shuffled(ds, o);
    std::set<int64_t> seen;
    std::vector<int64_t> order;
    for (int64_t step = 0; step < 5; ++step) {
      Batch b = shuffled.next();
      for (int64_t k = 0; k < 2; ++k) {
        int64_t expect_idx = shuffled.sampler().global_index(0, step * 2 + k);
        expect_sample(b, k, expect_idx, false);
        bool m = false;
        int64_t idx = identify(b, k, &m);
        EXPECT_EQ(idx, expect_idx);
        seen.insert(idx);
        order.push_back(idx);
      }
    }
    EXPECT_EQ(seen.size(), static_cast<size_t>(kN));
    std::vector<int64_t> identity(kN);
    for (int64_t i = 0; i < kN; ++i) identity[static_cast<size_t>(i)] = i;
    EXPECT_NE(order, identity) << "shuffle on gave dataset order";
    EXPECT_EQ(shuffled.position(), (DataPosition{1, 0}));
  }
}

TEST(IdxRoundTrip, FloatConversionAndLayout) {
  // Values 0, 128, 255 map to v*2/255-1; a 3-channel image lands in NCHW with channel planes.
  ScratchDir dir("layout");
  auto src = data::make_synthetic_source(6, 5, 3, 11);
  auto o = options(dir / "out", 4);
  data::run_conversion(*src, o);
  auto ds = ShardedDataset::open(dir / "out");
  LoaderOptions lo;
  lo.global_batch = 3;
  lo.workers = 0;
  lo.shuffle = false;
  Loader loader(ds, lo);
  Batch b = loader.next();
  ASSERT_EQ(b.images.sizes(), (c10::IntArrayRef{3, 3, 5, 5}));
  auto acc = b.images.accessor<float, 4>();
  std::vector<uint8_t> hwc(static_cast<size_t>(ds->image_bytes()));
  for (int64_t k = 0; k < 3; ++k) {
    ds->read_image(k, hwc.data());
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < 5; ++y)
        for (int x = 0; x < 5; ++x)
          ASSERT_NEAR(acc[k][c][y][x], static_cast<double>(hwc[static_cast<size_t>((y * 5 + x) * 3 + c)]) * 2.0 / 255.0 - 1.0, 1e-6);
  }
  EXPECT_FLOAT_EQ(to_float(0), -1.0f);
  EXPECT_FLOAT_EQ(to_float(255), 1.0f);
  EXPECT_NEAR(to_float(128), 128.0 * 2.0 / 255.0 - 1.0, 1e-7);
  // The source's 0 and 255 (idx test data) arrive as exactly -1 and 1.
  ScratchDir idx_dir("layout-idx");
  IdxFiles f = write_idx(idx_dir, false);
  auto isrc = data::make_idx_source(f.images, f.labels, 0);
  data::run_conversion(*isrc, options(idx_dir / "out", 100));
  LoaderOptions io;
  io.global_batch = 1;
  io.workers = 0;
  io.shuffle = false;
  Loader il(ShardedDataset::open(idx_dir / "out"), io);
  Batch first = il.next();
  EXPECT_EQ(first.images[0][0][0][0].item<float>(), -1.0f);
  EXPECT_EQ(first.images[0][0][0][1].item<float>(), 1.0f);
}

TEST(IdxRoundTrip, HorizontalFlipMirrorsColumnsDeterministically) {
  ScratchDir dir("flip");
  IdxFiles f = write_idx(dir, false);
  auto src = data::make_idx_source(f.images, f.labels, 0);
  data::run_conversion(*src, options(dir / "out", 4));
  auto ds = ShardedDataset::open(dir / "out");
  std::vector<std::vector<bool>> flips_by_workers;
  for (unsigned workers : {0u, 2u}) {
    LoaderOptions o;
    o.global_batch = 5;
    o.workers = workers;
    o.shuffle = true;
    o.flip = true;
    o.seed = 5;
    Loader loader(ds, o);
    std::vector<bool> flips;
    for (int step = 0; step < 8; ++step) {
      Batch b = loader.next();
      for (int64_t k = 0; k < 5; ++k) {
        bool mirrored = false;
        int64_t idx = identify(b, k, &mirrored);
        ASSERT_EQ(idx, loader.sampler().global_index(b.position.epoch, b.position.index + k)) << "step " << step;
        expect_sample(b, k, idx, mirrored);  // exactly the source, or exactly its column mirror
        flips.push_back(mirrored);
      }
    }
    flips_by_workers.push_back(flips);
  }
  EXPECT_EQ(flips_by_workers[0], flips_by_workers[1]) << "flips depend on the worker count";
  size_t n_flipped = static_cast<size_t>(std::count(flips_by_workers[0].begin(), flips_by_workers[0].end(), true));
  EXPECT_GT(n_flipped, 5u);
  EXPECT_LT(n_flipped, 35u);
  // flip off: never mirrored.
  LoaderOptions o;
  o.global_batch = 5;
  o.workers = 0;
  o.seed = 5;
  Loader plain(ds, o);
  for (int step = 0; step < 4; ++step) {
    Batch b = plain.next();
    for (int64_t k = 0; k < 5; ++k) {
      bool mirrored = true;
      identify(b, k, &mirrored);
      EXPECT_FALSE(mirrored);
    }
  }
}

// Loader options for a float loader and its uint8 twin (same batches, same flips).
std::pair<LoaderOptions, LoaderOptions> float_and_uint8(int64_t batch, unsigned workers, uint64_t seed, bool flip) {
  LoaderOptions f;
  f.global_batch = batch;
  f.workers = workers;
  f.seed = seed;
  f.flip = flip;
  LoaderOptions u = f;
  u.output = data::LoaderOutput::kUint8;
  return {f, u};
}

// uint8_to_float (what a CUDA run applies on the GPU) gives exactly the float loader's values, bit for
// bit, for (nearly) every byte value, for the loader's 1- and 3-channel conversion paths, flipped or not.
TEST(IdxRoundTrip, Uint8ToFloatIsBitIdenticalToTheFloatLoader) {
  for (int channels : {1, 3}) {
    ScratchDir dir("uint8_bits_" + std::to_string(channels));
    // 16x16 random bytes: a batch of 8 holds 2048 values per channel.
    auto src = data::make_synthetic_source(16, 16, channels, 11);
    data::run_conversion(*src, options(dir / "out", 16));
    auto ds = ShardedDataset::open(dir / "out");
    for (bool flip : {false, true}) {
      const auto [f, u] = float_and_uint8(8, 0, 3, flip);
      Loader bytes_loader(ds, u), float_loader(ds, f);
      std::set<int> values;
      for (int step = 0; step < 2; ++step) {
        Batch b = bytes_loader.next();
        Batch fb = float_loader.next();
        torch::Tensor converted = uint8_to_float(b.images);
        ASSERT_EQ(converted.sizes(), fb.images.sizes());
        ASSERT_EQ(converted.scalar_type(), torch::kFloat32);
        EXPECT_TRUE(converted.is_contiguous());
        EXPECT_TRUE(torch::equal(converted, fb.images))
            << channels << " channels, flip " << flip << ", step " << step << ": max difference "
            << (converted - fb.images).abs().max().item<float>();
        auto bytes = b.images.contiguous();
        for (int64_t i = 0; i < bytes.numel(); ++i) values.insert(bytes.data_ptr<uint8_t>()[i]);
      }
      EXPECT_GT(values.size(), 200u) << "the synthetic images should cover most byte values";
    }
  }
  // The end points and the scale itself: 0 -> -1, 255 -> 1 (to the float nearest 255 * 2/255 - 1).
  auto ends = uint8_to_float(torch::tensor({0, 255}, torch::kUInt8).reshape({1, 1, 2, 1}));
  EXPECT_EQ(ends[0][0][0][0].item<float>(), -1.0f);
  EXPECT_EQ(ends[0][0][0][1].item<float>(), 255.0f * kPixelScale - 1.0f);
}

// uint8 output: (B, H, W, C) as stored, flips mirror columns, images_to_float gives the float batch.
TEST(IdxRoundTrip, Uint8OutputIsTheStoredBytes) {
  ScratchDir dir("uint8");
  auto src = data::make_synthetic_source(12, 5, 3, 4);
  data::run_conversion(*src, options(dir / "out", 5));
  auto ds = ShardedDataset::open(dir / "out");
  for (bool flip : {false, true}) {
    const auto [f, u] = float_and_uint8(4, 2, 8, flip);
    Loader bytes_loader(ds, u), float_loader(ds, f);
    std::vector<uint8_t> hwc(static_cast<size_t>(ds->image_bytes()));
    for (int step = 0; step < 6; ++step) {
      Batch b = bytes_loader.next();
      Batch fb = float_loader.next();
      ASSERT_EQ(b.images.scalar_type(), torch::kUInt8);
      ASSERT_EQ(b.images.sizes(), (c10::IntArrayRef{4, 5, 5, 3}));
      EXPECT_TRUE(torch::equal(images_to_float(b.images, torch::kCPU), fb.images)) << "step " << step;
      EXPECT_TRUE(torch::equal(b.labels, fb.labels));
      auto acc = b.images.accessor<uint8_t, 4>();
      for (int64_t k = 0; k < 4; ++k) {
        ds->read_image(bytes_loader.sampler().global_index(b.position.epoch, b.position.index + k), hwc.data());
        bool same = true, mirrored = true;
        for (int y = 0; y < 5; ++y)
          for (int x = 0; x < 5; ++x)
            for (int c = 0; c < 3; ++c) {
              same = same && acc[k][y][x][c] == hwc[static_cast<size_t>((y * 5 + x) * 3 + c)];
              mirrored = mirrored && acc[k][y][x][c] == hwc[static_cast<size_t>((y * 5 + 4 - x) * 3 + c)];
            }
        EXPECT_TRUE(flip ? (same || mirrored) : same) << "step " << step << " sample " << k;
      }
    }
  }
}

// The real Fashion-MNIST test split against the raw idx bytes read here with zlib.
TEST(IdxRoundTrip, FashionMnistMatchesRawIdxBytes) {
  const std::string root = "/usr/share/datasets/fashion-mnist/";
  const std::string images = root + "t10k-images-idx3-ubyte.gz", labels = root + "t10k-labels-idx1-ubyte.gz";
  if (!fs::exists(images) || !fs::exists(labels)) GTEST_SKIP() << "Fashion-MNIST not installed at " << root;
  std::string raw = read_gz(images), raw_labels = read_gz(labels);
  ASSERT_EQ(raw.size(), 16u + 10000u * 784u);
  ASSERT_EQ(raw_labels.size(), 8u + 10000u);
  ASSERT_EQ(static_cast<uint8_t>(raw[2]), 0x08);
  ASSERT_EQ(static_cast<uint8_t>(raw[3]), 0x03);

  ScratchDir dir("fmnist");
  auto src = data::make_idx_source(images, labels, 0);
  auto r = data::run_conversion(*src, options(dir / "out", 3000));
  EXPECT_EQ(r.manifest.count, 10000);
  EXPECT_EQ(r.manifest.shards.size(), 4u);
  auto ds = ShardedDataset::open(dir / "out");
  ASSERT_EQ(ds->manifest().height, 28);
  ASSERT_EQ(ds->manifest().width, 28);
  ASSERT_EQ(ds->manifest().channels, 1);
  std::vector<uint8_t> img(784);
  for (int64_t i : {0, 1, 2999, 3000, 7777, 9999}) {
    ds->read_image(i, img.data());
    EXPECT_EQ(0, std::memcmp(img.data(), raw.data() + 16 + i * 784, 784)) << "image " << i;
    EXPECT_EQ(ds->label(i), static_cast<uint8_t>(raw_labels[static_cast<size_t>(8 + i)])) << "label " << i;
  }
  // Every image, through the loader with background workers.
  LoaderOptions o;
  o.global_batch = 1000;
  o.workers = 2;
  o.shuffle = false;
  Loader loader(ds, o);
  for (int step = 0; step < 10; ++step) {
    Batch b = loader.next();
    auto expected = torch::from_blob(raw.data() + 16 + step * 1000 * 784, {1000, 1, 28, 28}, torch::kUInt8)
                        .to(torch::kFloat32)
                        .mul(2.0f / 255.0f)
                        .sub(1.0f);
    ASSERT_TRUE(torch::allclose(b.images, expected, 0, 1e-6)) << "step " << step;
    auto expected_labels =
        torch::from_blob(raw_labels.data() + 8 + step * 1000, {1000}, torch::kUInt8).to(torch::kInt64);
    ASSERT_TRUE(torch::equal(b.labels, expected_labels)) << "step " << step;
  }
}

}  // namespace
}  // namespace gantry::testing
