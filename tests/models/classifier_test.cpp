// The classifier recipe: network shapes and refused sizes; `gantry train` on 6000 Fashion-MNIST images for
// 150 steps learns (held-out accuracy far above chance, its error the complement); a dataset without
// labels and labels beyond classifier.classes are refused with exit code 2 and one line.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "classifier/classifier_model.h"
#include "support/testing.h"

namespace gantry::classifier {
namespace {

using testing::run_command;
const std::string kGantry = GANTRY_BIN;

TEST(ClassifierModel, FeaturesAndLogitsHaveTheirShapes) {
  for (auto [c, hw] : {std::pair{1, 28}, std::pair{3, 32}}) {
    ClassifierOptions o;
    o.channels = c;
    o.height = o.width = hw;
    o.features = 16;
    Classifier net(o);
    auto x = torch::rand({5, c, hw, hw}) * 2 - 1;
    EXPECT_EQ(net->features(x).sizes(), (std::vector<int64_t>{5, 16}));
    EXPECT_GE(net->features(x).min().item<float>(), 0.0f);  // after the ReLU
    EXPECT_EQ(net->forward(x).sizes(), (std::vector<int64_t>{5, 10}));
  }
  ClassifierOptions odd;
  odd.height = odd.width = 30;
  EXPECT_THROW(Classifier{odd}, std::invalid_argument);
}

TEST(ClassifierTrain, LearnsFashionMnistAndRefusesUnlabelledData) {
  testing::ScratchDir dir("classifier");
  const std::string src = "/usr/share/datasets/fashion-mnist/";
  for (auto [split, limit] : {std::pair{"train", 6000}, std::pair{"t10k", 1000}}) {
    auto r = run_command(kGantry + " data convert --quiet --format idx --limit " + std::to_string(limit) +
                         " --images " + src + split + "-images-idx3-ubyte.gz --labels " + src + split +
                         "-labels-idx1-ubyte.gz --out " + (dir / split));
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  const std::string train = kGantry + " train --config " + GANTRY_SOURCE_DIR +
                            "/experiments/classifier_fashion_mnist.ini --train.threads 1 --data.path " +
                            (dir / "train");
  auto r = run_command(train + " --data.eval_path " + (dir / "t10k") + " --run-dir " + (dir / "run") +
                       " --train.steps 150 --train.eval_every 150 --train.checkpoint_every 150 --train.batch_size 64");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::ifstream in(dir / "run/metrics.jsonl");
  std::string line;
  double accuracy = -1, error = -1;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    if (j.contains("eval_accuracy")) accuracy = j["eval_accuracy"], error = j["eval_error"];
  }
  EXPECT_GT(accuracy, 0.7) << "150 steps of 64 images should be far above chance (0.1)";
  EXPECT_NEAR(accuracy + error, 1.0, 1e-12);

  auto unlabelled = run_command(kGantry + " data convert --quiet --format idx --limit 100 --images " + src +
                                "train-images-idx3-ubyte.gz --out " + (dir / "nolabels"));
  ASSERT_EQ(unlabelled.exit_code, 0) << unlabelled.output;
  auto refused = run_command(train + " --data.path " + (dir / "nolabels") + " --data.eval_path= --run-dir " +
                             (dir / "refused") + " --train.steps 2");
  EXPECT_EQ(refused.exit_code, 2) << refused.output;
  EXPECT_NE(refused.output.find("has no labels"), std::string::npos) << refused.output;
  auto few =
      run_command(train + " --data.eval_path= --run-dir " + (dir / "few") + " --train.steps 2 --classifier.classes 3");
  EXPECT_EQ(few.exit_code, 2) << few.output;
  EXPECT_NE(few.output.find("classifier.classes: a label outside 0..2"), std::string::npos) << few.output;
}

}  // namespace
}  // namespace gantry::classifier
