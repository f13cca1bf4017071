// Folder converter: PNG / JPEG / WebP files in nested directories, ordered by sorted relative path;
// other extensions ignored.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "convert/pipeline.h"
#include "core/errors.h"
#include "datasets/data_testing.h"
#include "shards/sharded_dataset.h"

namespace gantry::testing {
namespace {

namespace fs = std::filesystem;
using data::Image;
using data::ShardedDataset;

struct File {
  std::string rel;
  uint8_t color[3];
  bool exact;  // lossless codec
};

TEST(FolderConvert, SortedRelativePathsDefineOrderAndOtherFilesAreIgnored) {
  ScratchDir dir("folder");
  const std::string root = dir / "tree";
  // Created in an order unrelated to the sorted one; nested up to three levels.
  std::vector<File> files = {
      {"zeta.png", {250, 10, 10}, true},
      {"b/deep/er/one.webp", {10, 250, 10}, true},
      {"a/two.jpg", {10, 10, 250}, false},
      {"b/three.jpeg", {200, 200, 20}, false},
      {"a.png", {20, 200, 200}, true},
      {"b/deep/four.WEBP", {120, 60, 180}, true},
      {"a/b/five.PNG", {90, 30, 160}, true},
  };
  for (const auto& f : files) {
    fs::create_directories(fs::path(root) / fs::path(f.rel).parent_path());
    Image img = solid(12, 16, f.color[0], f.color[1], f.color[2]);
    std::string ext = fs::path(f.rel).extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
    std::string bytes = ext == ".png" ? data::encode_png_image(img)
                        : ext == ".webp" ? data::encode_webp(img, true)
                                         : data::encode_jpeg(img, 95);
    write_bytes(root + "/" + f.rel, bytes);
  }
  // Ignored: unsupported extensions (even with image contents) and files without one.
  write_bytes(root + "/readme.txt", "not an image");
  write_bytes(root + "/a/notes.md", "# notes");
  write_bytes(root + "/b/picture.gif", data::encode_png_image(solid(12, 16, 1, 2, 3)));
  write_bytes(root + "/b/deep/noext", data::encode_png_image(solid(12, 16, 1, 2, 3)));
  write_bytes(root + "/b/deep/im.png.bak", data::encode_png_image(solid(12, 16, 1, 2, 3)));

  auto r = run_gantry_split("data convert --format folder --root " + root + " --out " + (dir / "out") + " --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(r.err, "") << "ignored files must not be reported as bad";
  auto ds = ShardedDataset::open(dir / "out");
  ASSERT_EQ(ds->size(), static_cast<int64_t>(files.size()));
  EXPECT_EQ(ds->manifest().height, 12);  // native size kept without --resolution
  EXPECT_EQ(ds->manifest().width, 16);
  EXPECT_EQ(ds->manifest().channels, 3);
  EXPECT_NE(ds->manifest().source.find("folder:"), std::string::npos);

  std::vector<File> sorted = files;
  std::sort(sorted.begin(), sorted.end(), [](const File& a, const File& b) { return a.rel < b.rel; });
  std::vector<uint8_t> img(static_cast<size_t>(ds->image_bytes()));
  for (int64_t i = 0; i < ds->size(); ++i) {
    const File& f = sorted[static_cast<size_t>(i)];
    ds->read_image(i, img.data());
    auto mean = mean_color(img.data(), 12 * 16, 3);
    for (int c = 0; c < 3; ++c)
      EXPECT_NEAR(mean[static_cast<size_t>(c)], f.color[c], f.exact ? 0.0 : 3.0) << "image " << i << " " << f.rel;
    if (f.exact) {
      for (size_t p = 0; p < img.size(); ++p) ASSERT_EQ(img[p], f.color[p % 3]) << f.rel;
    }
  }
}

TEST(FolderConvert, ResolutionSquaresMixedSizesAndGrayscale) {
  ScratchDir dir("foldres");
  const std::string root = dir / "tree";
  fs::create_directories(root + "/x");
  write_bytes(root + "/x/wide.png", data::encode_png_image(solid(20, 40, 100, 150, 200)));
  write_bytes(root + "/tall.webp", data::encode_webp(solid(50, 30, 100, 150, 200), true));
  // Without --resolution, differing sizes are undecodable records (named) → fails with the default --max-bad.
  auto mixed = run_gantry_split("data convert --format folder --root " + root + " --out " + (dir / "native") + " --quiet");
  EXPECT_EQ(mixed.exit_code, 3) << mixed.err;
  EXPECT_NE(mixed.err.find("x/wide.png"), std::string::npos) << mixed.err;
  EXPECT_FALSE(fs::exists(dir / "native"));
  auto r = run_gantry("data convert --format folder --root " + root + " --out " + (dir / "out") +
                      " --resolution 10 --channels 1 --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto ds = ShardedDataset::open(dir / "out");
  ASSERT_EQ(ds->size(), 2);
  EXPECT_EQ(ds->manifest().height, 10);
  EXPECT_EQ(ds->manifest().channels, 1);
  std::vector<uint8_t> img(100);
  const uint8_t luma = static_cast<uint8_t>((100 * 299 + 150 * 587 + 200 * 114 + 500) / 1000);
  for (int64_t i = 0; i < 2; ++i) {
    ds->read_image(i, img.data());
    for (uint8_t v : img) ASSERT_NEAR(v, luma, 1) << "image " << i;
  }
}

TEST(FolderConvert, EmptyOrMissingFolderIsADataError) {
  ScratchDir dir("folderempty");
  fs::create_directories(dir / "empty/sub");
  write_bytes(dir / "empty/sub/a.txt", "x");
  EXPECT_THROW(data::make_folder_source(dir / "empty", 0), DataError);
  EXPECT_THROW(data::make_folder_source(dir / "missing", 0), DataError);
  auto r = run_gantry_split("data convert --format folder --root " + (dir / "empty") + " --out " + (dir / "out") + " --quiet");
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("no .png"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace gantry::testing
