#include <gtest/gtest.h>
#include <torch/torch.h>

#include "dcgan/dcgan_model.h"

namespace gantry::dcgan {
namespace {

TEST(DcganModel, ShapesAt32And64) {
  for (int64_t r : {32, 64}) {
    for (int64_t c : {1, 3}) {
      DcganOptions o;
      o.resolution = r;
      o.channels = c;
      o.g_width = 16;
      o.d_width = 8;
      Generator g(o);
      Discriminator d(o);
      auto x = g->forward(torch::rand({5, 100}) * 2 - 1);
      EXPECT_EQ(x.sizes(), (std::vector<int64_t>{5, c, r, r}));
      EXPECT_LE(x.abs().max().item<float>(), 1.0f);  // tanh
      EXPECT_EQ(d->forward(x).sizes(), (std::vector<int64_t>{5}));
    }
  }
  DcganOptions bad;
  bad.resolution = 28;
  EXPECT_THROW(Generator{bad}, std::invalid_argument);
}

TEST(DcganModel, PaperChannelStackAt64) {
  Generator g(DcganOptions{});  // g_width 128: 4x4x1024 → 64x64x3
  auto params = g->named_parameters();
  EXPECT_EQ(params["project.weight"].sizes(), (std::vector<int64_t>{1024 * 16, 100}));
  EXPECT_EQ(params["body.0.weight"].sizes(), (std::vector<int64_t>{1024, 512, 4, 4}));
  EXPECT_EQ(params["body.9.weight"].sizes(), (std::vector<int64_t>{128, 3, 4, 4}));
  // No BatchNorm on the generator output or the discriminator input.
  Discriminator d(DcganOptions{});
  for (const auto& p : d->named_parameters()) EXPECT_NE(p.key(), "body.1.weight") << "BatchNorm after the first conv";
}

TEST(DcganModel, InitialisationFollowsThePaper) {
  torch::manual_seed(0);
  DcganOptions o;
  o.g_width = 32;
  Generator g(o);
  dcgan_init(*g);
  auto p = g->named_parameters();
  EXPECT_NEAR(p["body.0.weight"].std().item<double>(), 0.02, 0.001);
  EXPECT_NEAR(p["project.weight"].std().item<double>(), 0.02, 0.001);
  EXPECT_NEAR(p["project_bn.weight"].mean().item<double>(), 1.0, 0.01);
  EXPECT_NEAR(p["project_bn.weight"].std().item<double>(), 0.02, 0.005);
  EXPECT_EQ(p["project_bn.bias"].abs().max().item<double>(), 0.0);
}

}  // namespace
}  // namespace gantry::dcgan
