// gantry sample on runs trained here by `gantry train`: an f-GAN generator (20 steps on 1000
// Fashion-MNIST images) and a tiny CycleGAN (4 steps on two synthetic domains). The samples are the same
// images on one rank and on two, in every format (dataset, PNG files, grid); they are exactly the images
// gantry eval scores (the Fréchet distance between them and a dataset of them is the 8-bit rounding only);
// a folder is translated the same on any number of ranks; a run whose data is gone still samples; bad input
// is one line and an exit code, and an existing output survives a refused run.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "convert/image.h"
#include "core/fs.h"
#include "shards/sharded_dataset.h"
#include "support/testing.h"

namespace gantry {
namespace {

namespace fs = std::filesystem;
using testing::run_command;
const std::string kGantry = GANTRY_BIN;
const std::string kMpiexec = std::string(MPIEXEC) + " --oversubscribe -n 2 " + GANTRY_BIN;

// Every image of a dataset directory, (N, H, W, C) uint8.
torch::Tensor dataset_images(const std::string& dir) {
  auto ds = data::ShardedDataset::open(dir);
  const auto& m = ds->manifest();
  torch::Tensor out = torch::empty({m.count, m.height, m.width, m.channels}, torch::kUInt8);
  for (int64_t i = 0; i < m.count; ++i) ds->read_image(i, out[i].data_ptr<uint8_t>());
  return out;
}

// A PNG file as (H, W, C) uint8.
torch::Tensor png(const std::string& path, int channels) {
  const std::string bytes = read_file(path);
  data::Image img = data::decode_image(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), channels);
  return torch::from_blob(img.pixels.data(), {img.height, img.width, img.channels}, torch::kUInt8).clone();
}

// Tile i of a grid written with make_grid's layout (2 pixels of border), (h, w, C).
torch::Tensor tile(const torch::Tensor& grid, int64_t i, int64_t cols, int64_t h, int64_t w) {
  return grid.narrow(0, 2 + (i / cols) * (h + 2), h).narrow(1, 2 + (i % cols) * (w + 2), w);
}

nlohmann::json read_json(const std::string& path) {
  return nlohmann::json::parse(read_file(path));
}

class SampleCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::ScratchDir("sample-cli");
    const testing::ScratchDir& d = *dir_;
    for (auto [split, limit] : {std::pair{"train", 1000}, std::pair{"t10k", 500}}) {
      auto r = testing::convert_fashion_mnist(split, limit, d / split);
      ASSERT_EQ(r.exit_code, 0) << r.output;
    }
    auto r = run_command(kGantry + " train --config " + GANTRY_SOURCE_DIR + "/experiments/fgan_fashion_mnist.ini" +
                         " --train.threads 1 --data.path " + (d / "train") + " --data.eval_path " + (d / "t10k") +
                         " --run-dir " + (d / "fgan") +
                         " --train.steps 20 --train.batch_size 64 --train.checkpoint_every 20 --fgan.g_hidden 256 "
                         "--fgan.v_hidden 64");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    r = testing::make_colour_domains(d);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    r = run_command(kGantry + " train --config " + GANTRY_SOURCE_DIR + "/experiments/cyclegan_fashion_mnist.ini" +
                    " --run-dir " + (d / "cyclegan") + " --data.path " + (d / "a") + " --data.b_path " + (d / "b") +
                    " --data.eval_path " + (d / "a") +
                    " --data.workers 1 --train.steps 4 --train.batch_size 4 --train.threads 1"
                    " --train.checkpoint_every 4 --train.sample_every 0 --train.eval_every 0" +
                    testing::kTinyCycleGan);
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  static void TearDownTestSuite() { delete dir_; }
  static testing::ScratchDir* dir_;
};
testing::ScratchDir* SampleCli::dir_ = nullptr;

TEST_F(SampleCli, SamplesAreTheSameOnOneRankAndTwoInEveryFormat) {
  const testing::ScratchDir& d = *dir_;
  // One LibTorch thread per rank everywhere: the same arithmetic in every process, so the same bits.
  const std::string from = " sample --train.threads 1 --checkpoint " + (d / "fgan");
  auto r = run_command(kGantry + from + " --count 250 --format dataset --out " + (d / "one"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_command(kMpiexec + from + " --count 250 --format dataset --out " + (d / "two"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("sampled 250 images"), std::string::npos) << r.output;
  const torch::Tensor one = dataset_images(d / "one"), two = dataset_images(d / "two");
  ASSERT_EQ(one.sizes(), torch::IntArrayRef({250, 28, 28, 1}));
  EXPECT_TRUE(torch::equal(one, two)) << "2 ranks drew other images than 1 rank";
  EXPECT_GT(one.to(torch::kFloat32).std().item<double>(), 10.0) << "samples are not a constant image";
  EXPECT_FALSE(torch::equal(one[0], one[1]));

  // One PNG per sample on two ranks: the dataset's images, by global index.
  r = run_command(kMpiexec + from + " --count 250 --out " + (d / "pngs"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  int files = 0;
  for (const auto& e : fs::directory_iterator(d / "pngs")) files += e.path().extension() == ".png";
  EXPECT_EQ(files, 250);
  for (int i : {0, 99, 100, 137, 249}) {
    char name[32];
    std::snprintf(name, sizeof name, "/sample-%06d.png", i);
    EXPECT_TRUE(torch::equal(png(d / "pngs" + name, 1), one[i])) << name;
  }

  // A grid of the first 10: a prefix of the same sequence (the count changes no image), 4 columns.
  r = run_command(kMpiexec + from + " --count 10 --out " + (d / "grid.png"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const torch::Tensor grid = png(d / "grid.png", 1);
  ASSERT_EQ(grid.sizes(), torch::IntArrayRef({3 * 30 + 2, 4 * 30 + 2, 1}));
  for (int64_t i = 0; i < 10; ++i) EXPECT_TRUE(torch::equal(tile(grid, i, 4, 28, 28), one[i])) << "tile " << i;

  // Another seed, other images.
  r = run_command(kGantry + from + " --count 10 --seed 7 --format dataset --out " + (d / "seed7"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_FALSE(torch::equal(dataset_images(d / "seed7"), one.narrow(0, 0, 10)));
}

// gantry eval draws its samples with the same keys: in a stand-in feature space (TorchScript, 8x8 pools),
// the Fréchet distance between eval's 400 samples (2 ranks) and a dataset of `gantry sample --count 400`
// is the 8-bit rounding of the dataset only — far below the distance to 400 samples of another seed.
TEST_F(SampleCli, TheSamplesAreTheImagesGantryEvalScores) {
  const testing::ScratchDir& d = *dir_;
  testing::write_bytes(d / "pool.py",
                       "import sys, torch\n"
                       "class Pool(torch.nn.Module):\n"
                       "    def forward(self, x):\n"
                       "        return torch.nn.functional.adaptive_avg_pool2d(x, 8).flatten(1)\n"
                       "torch.jit.script(Pool()).save(sys.argv[1])\n");
  auto py = run_command(std::string(GANTRY_TORCH_PYTHON) + " " + (d / "pool.py") + " " + (d / "pool.pt"));
  ASSERT_EQ(py.exit_code, 0) << py.output;
  double fid[2];
  for (int k = 0; k < 2; ++k) {
    const std::string set = d / (k == 0 ? "same" : "other");
    auto r = run_command(kGantry + " sample --train.threads 1 --checkpoint " + (d / "fgan") +
                         " --count 400 --format dataset --out " + set + (k == 0 ? "" : " --seed 7"));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    // Held-out set = the samples (whole batches of 100: all 400 of them).
    r = run_command(kMpiexec + " eval --checkpoint " + (d / "fgan") + " --eval.inception " + (d / "pool.pt") +
                    " --eval.samples 400 --eval.kid_subsets 2 --eval.kid_subset_size 100 --train.batch_size 100"
                    " --data.eval_path " +
                    set + " --out " + set + ".json");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const auto j = read_json(set + ".json");
    ASSERT_EQ(j["values"]["real_images"], 400) << j.dump();
    fid[k] = j["values"]["fid"];
  }
  EXPECT_LT(fid[0], 1e-3) << "eval's samples are not the images gantry sample wrote";
  EXPECT_GT(fid[1], 100 * fid[0]) << fid[1];
}

TEST_F(SampleCli, AFolderIsTranslatedTheSameOnOneRankAndTwo) {
  const testing::ScratchDir& d = *dir_;
  fs::create_directories(d / "in");
  torch::manual_seed(3);
  for (int i = 0; i < 5; ++i) {
    data::Image img;
    img.height = 24, img.width = 20, img.channels = 3;  // not square: the center 20 x 20 is taken
    torch::Tensor px = torch::randint(0, 256, {24, 20, 3}, torch::kUInt8);
    img.pixels.assign(px.data_ptr<uint8_t>(), px.data_ptr<uint8_t>() + px.numel());
    testing::write_bytes(d / ("in/img" + std::to_string(i) + ".png"), data::encode_png_image(img));
  }
  testing::write_bytes(d / "in/notes.txt", "not an image\n");
  const std::string from = " sample --checkpoint " + (d / "cyclegan") + " --input " + (d / "in");
  auto r = run_command(kGantry + from + " --out " + (d / "t1"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("translated 5 images"), std::string::npos) << r.output;
  r = run_command(kMpiexec + from + " --out " + (d / "t2"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (int i = 0; i < 5; ++i) {
    const std::string name = "/img" + std::to_string(i) + ".png";
    const torch::Tensor a = png(d / "t1" + name, 3), b = png(d / "t2" + name, 3);
    ASSERT_EQ(a.sizes(), torch::IntArrayRef({16, 16, 3})) << "translated at the crop size the run trained at";
    EXPECT_TRUE(torch::equal(a, b)) << name;
  }
  EXPECT_FALSE(fs::exists(d / "t1/notes.png"));
  // b2a is the other generator.
  r = run_command(kGantry + from + " --direction b2a --out " + (d / "t3"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_FALSE(torch::equal(png(d / "t1/img0.png", 3), png(d / "t3/img0.png", 3)));
  // The grid: input, translation, pair by pair, 2·ceil(sqrt(5)) = 6 columns; its translations are the files'.
  r = run_command(kMpiexec + from + " --out " + (d / "pairs.png"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const torch::Tensor grid = png(d / "pairs.png", 3);
  ASSERT_EQ(grid.sizes(), torch::IntArrayRef({2 * 18 + 2, 6 * 18 + 2, 3}));
  for (int i = 0; i < 5; ++i)
    EXPECT_TRUE(torch::equal(tile(grid, 2 * i + 1, 6, 16, 16), png(d / ("t1/img" + std::to_string(i) + ".png"), 3)));
}

// A run copied off its machine: the checkpoint records its data's image shape, so gantry sample reads no
// data (the same images as with it there); gantry eval, which reads the held-out set, names it.
TEST_F(SampleCli, ARunWithoutItsDataStillSamples) {
  const testing::ScratchDir& d = *dir_;
  const auto manifest = read_json(d / "fgan/checkpoints/step-00000020/manifest.json");
  EXPECT_EQ(manifest["data_shapes"]["train"],
            nlohmann::json({{"channels", 1}, {"height", 28}, {"width", 28}, {"labels", false}}))
      << manifest.dump();
  const std::string sample = kGantry + " sample --checkpoint " + (d / "fgan") + " --count 16 --out ";
  auto with = run_command(sample + (d / "with-data.png"));
  ASSERT_EQ(with.exit_code, 0) << with.output;
  struct Away {  // the datasets moved away for this test, and back after it
    std::vector<std::pair<fs::path, fs::path>> moved;
    ~Away() {
      for (const auto& [from, to] : moved) fs::rename(to, from);
    }
  } away;
  for (const char* split : {"train", "t10k"}) {
    fs::rename(d / split, d / (std::string(split) + "-away"));
    away.moved.emplace_back(d / split, d / (std::string(split) + "-away"));
  }
  auto without = run_command(sample + (d / "without-data.png"));
  ASSERT_EQ(without.exit_code, 0) << without.output;
  EXPECT_EQ(read_file(d / "without-data.png"), read_file(d / "with-data.png"));
  auto eval = run_command(kGantry + " eval --checkpoint " + (d / "fgan"));
  EXPECT_EQ(eval.exit_code, 3) << eval.output;
  EXPECT_NE(eval.output.find("gantry: error: " + (d / "t10k")), std::string::npos) << eval.output;
}

TEST_F(SampleCli, BadInputIsOneLineAndAnExitCodeAndKeepsWhatExists) {
  const testing::ScratchDir& d = *dir_;
  fs::create_directories(d / "kept");
  testing::write_bytes(d / "kept/precious.txt", "x");
  auto r = run_command(kMpiexec + " sample --checkpoint " + (d / "fgan") + " --count 5 --out " + (d / "kept"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("gantry: error: " + (d / "kept") + ": already exists (add --force to replace it)"),
            std::string::npos)
      << r.output;
  EXPECT_EQ(read_file(d / "kept/precious.txt"), "x");
  r = run_command(kGantry + " sample --checkpoint " + (d / "fgan") + " --count 5 --force --out " + (d / "kept"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_FALSE(fs::exists(d / "kept/precious.txt"));
  EXPECT_TRUE(fs::exists(d / "kept/sample-000004.png"));

  struct Case {
    std::string args;
    int code;
    std::string message;
  };
  const std::vector<Case> cases = {
      {" --checkpoint " + (d / "nothing") + " --out x.png", 4, ""},
      {" --checkpoint " + (d / "fgan"), 2, "--out: required"},
      {" --checkpoint " + (d / "fgan") + " --out " + (d / "g.png") + " --count 0", 2, "--count: '0' is not a positive"},
      {" --checkpoint " + (d / "fgan") + " --out " + (d / "g.png") + " --format dataset", 2, "a .png file is a grid"},
      {" --checkpoint " + (d / "fgan") + " --out " + (d / "g.png") + " --input " + (d / "in"), 2,
       "--input: recipe fgan does not translate images"},
      {" --checkpoint " + (d / "cyclegan") + " --out " + (d / "g.png"), 2,
       "recipe cyclegan translates images: give --input DIR"},
      {" --checkpoint " + (d / "cyclegan") + " --out " + (d / "g.png") + " --input " + (d / "nowhere"), 3,
       "not a directory (--input)"},
      {" --checkpoint " + (d / "cyclegan") + " --out " + (d / "g.png") + " --input " + (d / "in") + " --direction up",
       2, "--direction: 'up'"},
  };
  for (const Case& c : cases) {
    r = run_command(kMpiexec + " sample" + c.args);
    EXPECT_EQ(r.exit_code, c.code) << c.args << "\n" << r.output;
    EXPECT_NE(r.output.find("gantry: error: "), std::string::npos) << c.args << "\n" << r.output;
    EXPECT_NE(r.output.find(c.message), std::string::npos) << c.args << "\n" << r.output;
  }
  EXPECT_FALSE(fs::exists(d / "g.png"));
}

}  // namespace
}  // namespace gantry
