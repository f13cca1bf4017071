#include "cyclegan/cyclegan_recipe.h"

#include <torch/torch.h>

#include <algorithm>
#include <stdexcept>

#include "core/errors.h"
#include "cyclegan/cyclegan_losses.h"
#include "cyclegan/cyclegan_model.h"
#include "cyclegan/image_pool.h"
#include "train/fused_adam.h"

namespace gantry::cyclegan {

namespace {

// Random-number streams of the recipe (keyed with run.seed, never offsets of it).
constexpr uint64_t kCropA = 0xC7C1A, kCropB = 0xC7C1B, kPools = 0xC7C1E;
constexpr int64_t kVisualRows = 6;  // sample grid: 6 rows of A, G(A), F(G(A)), B, F(B), G(F(B))

// The discriminators' parameters stop requiring gradients while the generators update (the reference's
// set_requires_grad(False)): backward still reaches the generated images through them, but computes no
// weight gradients that would only be zeroed before the discriminators' own update.
class Frozen {
 public:
  explicit Frozen(std::vector<torch::Tensor> params) : params_(std::move(params)) {
    for (auto& p : params_) p.requires_grad_(false);
  }
  ~Frozen() {
    for (auto& p : params_) p.requires_grad_(true);
  }
  Frozen(const Frozen&) = delete;
  Frozen& operator=(const Frozen&) = delete;

 private:
  std::vector<torch::Tensor> params_;
};

std::vector<torch::Tensor> parameters_of(std::initializer_list<torch::nn::Module*> modules) {
  std::vector<torch::Tensor> out;
  for (auto* m : modules)
    for (auto& p : m->parameters()) out.push_back(p);
  return out;
}

torch::Tensor center_crop(const torch::Tensor& x, int64_t size) {
  return x.narrow(2, (x.size(2) - size) / 2, size).narrow(3, (x.size(3) - size) / 2, size);
}

// Gray images shown next to colour ones get three equal channels.
torch::Tensor with_channels(const torch::Tensor& x, int64_t channels) {
  return x.size(1) == channels ? x : x.expand({x.size(0), channels, x.size(2), x.size(3)});
}

class CycleGanRecipe : public Recipe {
 public:
  explicit CycleGanRecipe(const RecipeEnv& env)
      : step_(env.step),
        device_(env.device),
        rank_(env.comm.rank()),
        world_(env.comm.world_size()),
        seed_(static_cast<uint64_t>(env.config.int64("run.seed"))),
        weights_{env.config.real("cyclegan.lambda_cycle"), env.config.real("cyclegan.lambda_identity")} {
    const Config& c = env.config;
    const DataShape& a = env.shapes.at(kMainStream);
    const DataShape& b = env.shapes.at(kStreamB);
    crop_ = checked_crop_size(c, a, b);
    check_discriminator(c);
    if (weights_.identity > 0 && a.channels != b.channels)
      throw UsageError("cyclegan.lambda_identity: the identity loss needs domains with the same channels (A has " +
                       std::to_string(a.channels) + ", B " + std::to_string(b.channels) + "); set it to 0");

    GeneratorOptions go;
    go.width = c.int64("cyclegan.g_width");
    go.blocks = c.int64("cyclegan.residual_blocks") > 0 ? c.int64("cyclegan.residual_blocks") : blocks_for(crop_);
    go.in_channels = a.channels;
    go.out_channels = b.channels;
    g_ = Generator(go);
    std::swap(go.in_channels, go.out_channels);
    f_ = Generator(go);
    DiscriminatorOptions dopt;
    dopt.width = c.int64("cyclegan.d_width");
    dopt.layers = c.int64("cyclegan.d_layers");
    dopt.channels = a.channels;
    d_a_ = Discriminator(dopt);
    dopt.channels = b.channels;
    d_b_ = Discriminator(dopt);
    for (torch::nn::Module* m : std::initializer_list<torch::nn::Module*>{g_.get(), f_.get(), d_a_.get(), d_b_.get()}) {
      init(*m);
      m->to(device_);
    }
    // One Adam for both generators and one for both discriminators, as the reference.
    const auto adam = torch::optim::AdamOptions(c.real("train.lr")).betas({c.real("cyclegan.beta1"), 0.999});
    opt_g_ = std::make_unique<FusedAdam>(parameters_of({g_.get(), f_.get()}), adam);
    opt_d_ = std::make_unique<FusedAdam>(parameters_of({d_a_.get(), d_b_.get()}), adam);
    env.sync.add_group("G", {g_.ptr(), f_.ptr()});
    env.sync.add_group("D", {d_a_.ptr(), d_b_.ptr()});

    const int64_t pool = c.int64("cyclegan.pool_size");
    pool_a_ = std::make_unique<ImagePool>(pool, c10::IntArrayRef{a.channels, crop_, crop_}, device_);
    pool_b_ = std::make_unique<ImagePool>(pool, c10::IntArrayRef{b.channels, crop_, crop_}, device_);
    visual_a_ = torch::zeros({kVisualRows, a.channels, crop_, crop_});
    visual_b_ = torch::zeros({kVisualRows, b.channels, crop_, crop_});
  }

  std::vector<std::pair<std::string, std::shared_ptr<torch::nn::Module>>> networks() override {
    return {{"generator_a2b", g_.ptr()},
            {"generator_b2a", f_.ptr()},
            {"discriminator_a", d_a_.ptr()},
            {"discriminator_b", d_b_.ptr()}};
  }
  std::vector<std::pair<std::string, torch::optim::Optimizer*>> optimizers() override {
    return {{"adam_g", opt_g_.get()}, {"adam_d", opt_d_.get()}};
  }

  // The pools are each rank's own; the images of the sample grid are rank 0's.
  RecipeState state() override {
    RecipeState s;
    s.shared = {
        {"visual_a", visual_a_}, {"visual_b", visual_b_}, {"visual_count", torch::full({1}, visuals_, torch::kInt64)}};
    s.per_rank = {{"pool_a", pool_a_->images_state()},
                  {"pool_a_count", pool_a_->count_state()},
                  {"pool_b", pool_b_->images_state()},
                  {"pool_b_count", pool_b_->count_state()}};
    return s;
  }

  // On another world size there are no per-rank pools to restore: every rank starts with empty ones.
  void restore(const RecipeState& s) override {
    auto find = [](const std::vector<std::pair<std::string, torch::Tensor>>& v, const std::string& name) {
      for (const auto& [k, t] : v)
        if (k == name) return t;
      return torch::Tensor();
    };
    try {
      if (auto images = find(s.per_rank, "pool_a"); images.defined())
        pool_a_->restore(images.to(device_), find(s.per_rank, "pool_a_count"));
      else
        pool_a_->clear();
      if (auto images = find(s.per_rank, "pool_b"); images.defined())
        pool_b_->restore(images.to(device_), find(s.per_rank, "pool_b_count"));
      else
        pool_b_->clear();
    } catch (const std::invalid_argument& e) {
      throw CheckpointError(std::string("cyclegan image pools: ") + e.what());
    }
    if (auto n = find(s.shared, "visual_count"); n.defined()) {
      visual_a_ = find(s.shared, "visual_a").clone();
      visual_b_ = find(s.shared, "visual_b").clone();
      visuals_ = n.item<int64_t>();
    }
  }

  Losses train_step(const StepBatches& batches) override {
    const Batch& batch_a = batches.at(kMainStream);
    const Batch& batch_b = batches.at(kStreamB);
    const auto real_a = random_crop(images_to_float(batch_a.images, device_), batch_a, kCropA);
    const auto real_b = random_crop(images_to_float(batch_b.images, device_), batch_b, kCropB);
    keep_visuals(real_a, real_b);

    // Both generators: one objective, one reduction of G's and F's gradients, one Adam step; the
    // discriminators only pass gradients through to the generated images.
    std::vector<torch::Tensor> fakes_a, fakes_b;
    Losses g;
    {
      Frozen frozen(parameters_of({d_a_.get(), d_b_.get()}));
      g = step_.update("G", {opt_g_.get()}, [&](int64_t k) {
        GeneratorTerms t =
            generator_terms(g_, f_, d_a_, d_b_, step_.micro(real_a, k), step_.micro(real_b, k), weights_);
        fakes_a.push_back(t.fake_a.detach());
        fakes_b.push_back(t.fake_b.detach());
        Losses out{{"loss_g", t.total},
                   {"gan_g", t.gan_g},
                   {"gan_f", t.gan_f},
                   {"cycle_a", t.cycle_a},
                   {"cycle_b", t.cycle_b}};
        if (t.identity_a.defined()) {
          out.emplace_back("identity_a", t.identity_a);
          out.emplace_back("identity_b", t.identity_b);
        }
        return out;
      });
    }

    // The discriminators see this step's generated images or older ones from the pools (the reference
    // queries D_B's pool, then D_A's), then take one update with one reduction.
    at::Generator gen =
        keyed_generator(keyed_seed(seed_, kPools, static_cast<uint64_t>(rank_)),
                        static_cast<uint64_t>(batch_a.position.epoch), static_cast<uint64_t>(batch_a.position.index));
    const auto pooled_b = pool_b_->query(torch::cat(fakes_b), gen);
    const auto pooled_a = pool_a_->query(torch::cat(fakes_a), gen);
    Losses d = step_.update("D", {opt_d_.get()}, [&](int64_t k) {
      auto loss_a = discriminator_loss(d_a_, step_.micro(real_a, k), step_.micro(pooled_a, k));
      auto loss_b = discriminator_loss(d_b_, step_.micro(real_b, k), step_.micro(pooled_b, k));
      return Losses{{"loss_d", loss_a + loss_b}, {"loss_d_a", loss_a}, {"loss_d_b", loss_b}};
    });

    Losses out{d[0], g[0], d[1], d[2]};
    out.insert(out.end(), g.begin() + 1, g.end());
    return out;
  }

  // Rows of A, G(A), F(G(A)), B, F(B), G(F(B)) for the first training images rank 0 saw (the same images
  // in every grid of a run; repeated while fewer than six have been seen).
  torch::Tensor sample(int64_t, at::Generator&) override {
    if (visuals_ == 0) return {};
    torch::NoGradGuard no_grad;
    auto rows = torch::arange(kVisualRows) % visuals_;
    auto a = visual_a_.index_select(0, rows).to(device_), b = visual_b_.index_select(0, rows).to(device_);
    auto fake_b = g_->forward(a), fake_a = f_->forward(b);
    auto rec_a = f_->forward(fake_b), rec_b = g_->forward(fake_a);
    const int64_t c = std::max(a.size(1), b.size(1));
    auto grid = torch::stack({with_channels(a, c), with_channels(fake_b, c), with_channels(rec_a, c),
                              with_channels(b, c), with_channels(fake_a, c), with_channels(rec_b, c)},
                             1);  // (rows, 6, C, H, W)
    return grid.reshape({-1, c, crop_, crop_}).cpu();
  }

  // G (A → B) or F (B → A) on center crops of the training size, as the held-out evaluation sees them.
  torch::Tensor translate(const torch::Tensor& images, bool a_to_b) override {
    torch::NoGradGuard no_grad;
    auto x = center_crop(images.to(device_, torch::kFloat32), crop_);
    return (a_to_b ? g_->forward(x) : f_->forward(x)).cpu();
  }

  // Held-out cycle consistency of domain A: mean |F(G(a)) - a| (pixels in [-1, 1], no λ), center crops.
  Losses evaluate(BatchSource& eval, int64_t batches, uint64_t) override {
    torch::NoGradGuard no_grad;
    auto sum = torch::zeros({}, torch::TensorOptions(device_).dtype(torch::kFloat64));
    int64_t n = 0;
    for (int64_t i = 0; i < batches; ++i) {
      Batch batch = eval.next();
      auto a = center_crop(images_to_float(batch.images, device_), crop_);
      sum += (f_->forward(g_->forward(a)) - a).abs().mean().to(torch::kFloat64) * static_cast<double>(a.size(0));
      n += a.size(0);
    }
    return {{"eval_cycle_a", sum / static_cast<double>(std::max<int64_t>(1, n))}};
  }

 private:
  // cyclegan.crop_size, or the images' own size when it is 0; both domains must hold it.
  static int64_t checked_crop_size(const Config& c, const DataShape& a, const DataShape& b) {
    int64_t crop = c.int64("cyclegan.crop_size");
    const std::string sizes = std::to_string(a.height) + "x" + std::to_string(a.width) + " and " +
                              std::to_string(b.height) + "x" + std::to_string(b.width);
    if (crop == 0) {
      if (a.height != a.width || b.height != a.height || b.width != a.width)
        throw UsageError(
            "cyclegan.crop_size: 0 (the images' own size) needs square images of one size in both "
            "domains, got " +
            sizes + " (set a crop size)");
      crop = a.height;
    }
    if (crop > std::min({a.height, a.width, b.height, b.width}))
      throw UsageError("cyclegan.crop_size: " + std::to_string(crop) + " is larger than the images (" + sizes + ")");
    if (crop % 4 != 0)
      throw UsageError("cyclegan.crop_size: " + std::to_string(crop) +
                       " is not a multiple of 4 (the generators downsample twice by 2)");
    return crop;
  }

  void check_discriminator(const Config& c) const {
    const int64_t layers = c.int64("cyclegan.d_layers");
    if (patch_map_size(crop_, layers) < 1)
      throw UsageError("cyclegan.d_layers: " + std::to_string(layers) + " layers leave no patch scores for " +
                       std::to_string(crop_) + "x" + std::to_string(crop_) + " images (use fewer)");
  }

  // This rank's rows of a random crop of the global batch, offsets drawn for every sample of the global
  // batch from (seed, stream, data position): the same crops on any number of ranks and after a resume.
  torch::Tensor random_crop(const torch::Tensor& x, const Batch& batch, uint64_t stream) const {
    const int64_t h = x.size(2), w = x.size(3), local = x.size(0);
    if (h == crop_ && w == crop_) return x;
    at::Generator gen = batch_generator(seed_, stream, batch.position);
    const auto ys = rank_rows(at::randint(h - crop_ + 1, {local * world_}, gen, torch::kInt64), rank_, world_);
    const auto xs = rank_rows(at::randint(w - crop_ + 1, {local * world_}, gen, torch::kInt64), rank_, world_);
    std::vector<torch::Tensor> rows;
    for (int64_t i = 0; i < local; ++i)
      rows.push_back(x[i].narrow(1, ys[i].item<int64_t>(), crop_).narrow(2, xs[i].item<int64_t>(), crop_));
    return torch::stack(rows);
  }

  // The first images rank 0 trains on become the sample grid's inputs.
  void keep_visuals(const torch::Tensor& a, const torch::Tensor& b) {
    if (rank_ != 0 || visuals_ == kVisualRows) return;
    const int64_t take = std::min(kVisualRows - visuals_, a.size(0));
    visual_a_.narrow(0, visuals_, take).copy_(a.narrow(0, 0, take));
    visual_b_.narrow(0, visuals_, take).copy_(b.narrow(0, 0, take));
    visuals_ += take;
  }

  StepContext& step_;
  torch::Device device_;
  int rank_, world_;
  uint64_t seed_;
  LossWeights weights_;
  int64_t crop_ = 0;
  Generator g_{nullptr}, f_{nullptr};  // G: A → B, F: B → A
  Discriminator d_a_{nullptr}, d_b_{nullptr};
  std::unique_ptr<FusedAdam> opt_g_, opt_d_;
  std::unique_ptr<ImagePool> pool_a_, pool_b_;  // generated A images (for D_A), B images (for D_B)
  torch::Tensor visual_a_, visual_b_;           // (6, C, crop, crop) on the CPU
  int64_t visuals_ = 0;
};

}  // namespace

RecipeInfo recipe_info() {
  RecipeInfo info;
  info.name = "cyclegan";
  info.add_keys = [](Schema& s) {
    s.add_int("cyclegan.crop_size", 0,
              "random square crop of this side from each image (the paper: 256 from 286); 0: the images' own size", 0)
        .add_int("cyclegan.g_width", 64, "generator channels at full resolution (ngf)", 1)
        .add_int("cyclegan.residual_blocks", 0, "generator residual blocks (0: 9 for crops of 256 and up, else 6)", 0)
        .add_int("cyclegan.d_width", 64, "discriminator channels at its first layer (ndf)", 1)
        .add_int("cyclegan.d_layers", 3, "discriminator stride-2 layers (3: 70x70 PatchGAN)", 1, 8)
        .add_real("cyclegan.lambda_cycle", 10, "weight of the cycle-consistency L1 losses", 0)
        .add_real("cyclegan.lambda_identity", 0.5,
                  "weight of the identity L1 losses, as a fraction of lambda_cycle (0: off)", 0)
        .add_int("cyclegan.pool_size", 50, "generated images kept per discriminator (0: no history)", 0)
        .add_real("cyclegan.beta1", 0.5, "Adam beta1", 0, 1);
  };
  info.create = [](const RecipeEnv& env) { return std::make_unique<CycleGanRecipe>(env); };
  info.streams = {StreamSpec{kMainStream}, StreamSpec{kStreamB}};
  return info;
}

}  // namespace gantry::cyclegan
