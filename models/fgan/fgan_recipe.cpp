#include "fgan/fgan_recipe.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cmath>
#include <optional>

#include "core/errors.h"
#include "dcgan/dcgan_model.h"
#include "fgan/divergence.h"
#include "fgan/fgan_model.h"
#include "fgan/fgan_step.h"
#include "fgan/gauss_mixture.h"
#include "fgan/mixture_source.h"
#include "train/buffers.h"
#include "train/fused_adam.h"

namespace gantry::fgan {

namespace {

// Both players behind one interface: the modules (checkpointed, reduced) and their forward functions.
struct Player {
  std::shared_ptr<torch::nn::Module> module;
  Function forward;
};

class FganRecipe : public Recipe {
 public:
  explicit FganRecipe(const RecipeEnv& env)
      : step_(env.step),
        device_(env.device),
        rank_(env.comm.rank()),
        world_(env.comm.world_size()),
        seed_(static_cast<uint64_t>(env.config.int64("run.seed"))),
        shape_(env.shape()),
        div_(divergence_by_name(env.config.str("fgan.divergence"))),
        objective_(objective_by_name(env.config.str("fgan.generator_objective"))),
        single_(env.config.str("fgan.update") == "single"),
        model_(env.config.str("fgan.model")),
        z_dim_(model_ == "gaussian" ? 1 : env.config.int64("fgan.z_dim")) {
    const Config& c = env.config;
    build_networks(c);
    // The divergence's activation and conjugate run in float32 on V's output, which an autocast forward
    // (train.precision bf16/fp16) leaves in low precision; a no-op in fp32.
    v_.forward = [f = v_.forward](const torch::Tensor& x) { return f(x).to(torch::kFloat32); };
    g_.module->to(device_);
    v_.module->to(device_);
    auto adam = [&](torch::nn::Module& m) {
      return std::make_unique<FusedAdam>(
          m.parameters(), torch::optim::AdamOptions(c.real("train.lr")).betas({c.real("fgan.beta1"), 0.999}));
    };
    opt_g_ = adam(*g_.module);
    opt_v_ = adam(*v_.module);
    // Every rank registers the same groups in the same order (the mode is in the configuration).
    // "G+V": the single step's one reduction; "V" and "G": the alternating steps' own reductions.
    if (single_) {
      env.sync.add_group("G+V", {g_.module, v_.module});
    } else {
      env.sync.add_group("V", {v_.module});
      env.sync.add_group("G", {g_.module});
    }
  }

  std::vector<std::pair<std::string, std::shared_ptr<torch::nn::Module>>> networks() override {
    return {{"generator", g_.module}, {"variational", v_.module}};
  }
  std::vector<std::pair<std::string, torch::optim::Optimizer*>> optimizers() override {
    return {{"adam_g", opt_g_.get()}, {"adam_v", opt_v_.get()}};
  }

  Losses train_step(const StepBatches& batches) override {
    const Batch& batch = batches.at(kMainStream);
    auto real = input(batch);
    auto z = step_noise(batch, real.size(0));
    Losses out;
    if (single_) {
      // Algorithm 1: one forward, one backward, one reduction of both players' gradients, both step.
      out = step_.update_with_backward(
          "G+V", {opt_v_.get(), opt_g_.get()}, [&](int64_t k, const StepContext::Scale& scale) {
            auto fake = g_.forward(step_.micro(z, k));
            return report(single_step_backward(div_, objective_, v_.forward, step_.micro(real, k), fake, scale));
          });
    } else {
      // Alternating: V ascends F on a detached generated batch (V reduced alone), then G takes its
      // step against the updated V (G reduced alone).
      std::vector<torch::Tensor> fakes;
      out = step_.update("V", {opt_v_.get()}, [&](int64_t k) {
        fakes.push_back(g_.forward(step_.micro(z, k)));
        ObjectiveTerms values = objective(div_, v_.forward(step_.micro(real, k)), v_.forward(fakes.back().detach()));
        Losses l = report(values);
        l.insert(l.begin(), {"loss_v", -values.F});
        return l;
      });
      out.erase(out.begin());  // loss_v is −F
      step_.update("G", {opt_g_.get()}, [&](int64_t k) {
        return Losses{{"loss_g", generator_loss(div_, objective_, v_.forward(fakes[static_cast<size_t>(k)]))}};
      });
    }
    if (gaussian_) {
      out.emplace_back("mu", gaussian_->mu_tensor());
      out.emplace_back("sigma", gaussian_->sigma_tensor());
    }
    return out;
  }

  // Samples from a fixed latent batch (the trainer's generator), BatchNorm in training mode
  // as in training, its statistics restored afterwards. The 1-D model's samples are not images.
  torch::Tensor sample(int64_t n, at::Generator& gen) override {
    if (gaussian_) return {};
    torch::NoGradGuard no_grad;
    BufferSnapshot keep({g_.module});
    return generated_images(latent(n, gen).to(device_)).cpu();
  }

  // F on held-out real samples against fresh generated ones (a lower bound on D_f(P‖Q_θ) up to V's
  // capacity), and its sampling variance from the per-sample terms: F = mean_P T − mean_Q f*(T) over
  // independent samples, so Var F = Var_P T / n_P + Var_Q f*(T) / n_Q. Each rank's share is divided by
  // the world size, so the trainer's average over ranks is the variance of their averaged F.
  // The generated samples are drawn per rank (keyed by rank): the generator's BatchNorm runs in training
  // mode on each rank's batch, as in training and in the paper's samples, so no per-sample key would make
  // them independent of the world size; eval_F on W ranks is an estimate of the same F, not the same number.
  // The 1-D model also reports θ = (μ, σ), D_f(P‖Q_θ) by quadrature, and the optimum θ*.
  Losses evaluate(BatchSource& eval, int64_t batches, uint64_t noise_key) override {
    torch::NoGradGuard no_grad;
    at::Generator gen = keyed_generator(noise_key, static_cast<uint64_t>(rank_));
    std::vector<torch::Tensor> real_T, fake_conj_T;  // per sample, float64
    for (int64_t i = 0; i < batches; ++i) {
      Batch b = eval.next();
      auto real = input(b);
      auto fake = g_.forward(latent(real.size(0), gen).to(device_));
      real_T.push_back(div_.activation_t(v_.forward(real)).to(torch::kFloat64));
      fake_conj_T.push_back(div_.conjugate_of_activation_t(v_.forward(fake)).to(torch::kFloat64));
    }
    const auto real_terms = torch::cat(real_T), fake_terms = torch::cat(fake_conj_T);
    const auto [var_real, mean_real] = torch::var_mean(real_terms);
    const auto [var_fake, mean_fake] = torch::var_mean(fake_terms);
    const double n = static_cast<double>(real_terms.size(0));  // = n_Q
    Losses out = {{"eval_F", mean_real - mean_fake}, {"eval_F_var", (var_real + var_fake) / (n * world_)}};
    auto scalar = [](double v) { return torch::tensor(v, torch::kFloat64); };
    if (gaussian_) {
      const double mu = gaussian_->mu(), sigma = gaussian_->sigma();
      const auto mixture = paper_mixture();
      out.emplace_back("eval_mu", scalar(mu));
      out.emplace_back("eval_sigma", scalar(sigma));
      out.emplace_back("eval_divergence", scalar(f_divergence(
                                              div_, [&](double x) { return mixture_pdf(mixture, x); },
                                              [&](double x) { return normal_pdf(x, mu, sigma); }, QuadratureGrid{})));
      if (!star_) star_ = fit_gaussian(div_);  // the direct answer the run should approach (once, ~0.5 s)
      out.emplace_back("eval_mu_star", scalar(star_->mu));
      out.emplace_back("eval_sigma_star", scalar(star_->sigma));
      out.emplace_back("eval_divergence_star", scalar(star_->divergence));
    }
    return out;
  }

 private:
  void build_networks(const Config& c) {
    const double g_init = c.real("fgan.g_init"), v_init = c.real("fgan.v_init");
    if (model_ == "gaussian") {
      GaussianGenerator g(c.real("fgan.mu0"), c.real("fgan.sigma0"));
      gaussian_ = g.get();
      MlpVariationalOptions vo;
      vo.in = 1;
      vo.hidden = c.int64("fgan.v_hidden");
      vo.activation = "tanh";
      vo.init_scale = v_init;
      MlpVariational v(vo);
      g_ = {g.ptr(), [g](const torch::Tensor& z) mutable { return g->forward(z); }};
      v_ = {v.ptr(), [v](const torch::Tensor& x) mutable { return v->forward(x); }};
    } else if (model_ == "mlp") {
      MlpGeneratorOptions go;
      go.z_dim = z_dim_;
      go.hidden = c.int64("fgan.g_hidden");
      go.out = shape_.channels * shape_.height * shape_.width;
      go.init_scale = g_init;
      MlpVariationalOptions vo;
      vo.in = go.out;
      vo.hidden = c.int64("fgan.v_hidden");
      vo.activation = "elu";
      vo.init_scale = v_init;
      MlpGenerator g(go);
      MlpVariational v(vo);
      g_ = {g.ptr(), [g](const torch::Tensor& z) mutable { return g->forward(z); }};
      v_ = {v.ptr(), [v](const torch::Tensor& x) mutable { return v->forward(x); }};
    } else {  // dcgan
      if (shape_.height != shape_.width)
        throw UsageError(at(c.str("data.path"), "fgan.model dcgan needs square images"));
      dcgan::DcganOptions o;
      o.resolution = shape_.height;
      o.channels = shape_.channels;
      o.z_dim = z_dim_;
      o.g_width = c.int64("fgan.g_width");
      o.d_width = c.int64("fgan.d_width");
      try {
        dcgan::Generator g(o);
        dcgan::Discriminator d(o);
        dcgan::dcgan_init(*g);
        dcgan::dcgan_init(*d);
        g_ = {g.ptr(), [g](const torch::Tensor& z) mutable { return g->forward(z); }};
        v_ = {d.ptr(), [d](const torch::Tensor& x) mutable { return d->forward(x); }};
      } catch (const std::invalid_argument& e) {
        throw UsageError(at(c.str("data.path"), e.what()));
      }
    }
  }

  // V's input from a batch: MLP models see flat pixels in [0, 1] (the generator's sigmoid range), the
  // DCGAN pair images in [-1, 1], the 1-D model (b, 1) values.
  torch::Tensor input(const Batch& batch) const {
    auto x = images_to_float(batch.images, device_);
    if (model_ == "gaussian") return x.reshape({x.size(0), 1});
    if (model_ == "mlp") return x.reshape({x.size(0), -1}).add(1.0).mul(0.5);
    return x;
  }

  torch::Tensor generated_images(const torch::Tensor& z) {
    auto x = g_.forward(z);
    if (model_ == "mlp") return x.mul(2.0).sub(1.0).view({z.size(0), shape_.channels, shape_.height, shape_.width});
    return x;
  }

  // z: N(0, 1) for the 1-D model, U(-1, 1)^z_dim for the image generators (as in the paper).
  torch::Tensor latent(int64_t n, at::Generator gen) const {
    if (model_ == "gaussian") return at::randn({n, 1}, gen, torch::kFloat32);
    return at::rand({n, z_dim_}, gen, torch::kFloat32) * 2 - 1;
  }

  // Noise for the whole global batch from (seed, data position), sliced to this rank's rows.
  torch::Tensor step_noise(const Batch& batch, int64_t local) const {
    auto gen = batch_generator(seed_, /*stream=*/0xF6A2, batch.position);
    return rank_rows(latent(local * world_, gen), rank_, world_).to(device_, /*non_blocking=*/true);
  }

  static Losses report(const ObjectiveTerms& values) {
    return {{"F", values.F}, {"E_P_T", values.real_T}, {"E_Q_fstar_T", values.fake_conj_T}};
  }

  StepContext& step_;
  torch::Device device_;
  int rank_, world_;
  uint64_t seed_;
  DataShape shape_;
  const Divergence& div_;
  GeneratorObjective objective_;
  bool single_;
  std::string model_;
  int64_t z_dim_;
  Player g_, v_;
  std::unique_ptr<FusedAdam> opt_g_, opt_v_;
  GaussianGeneratorImpl* gaussian_ = nullptr;
  std::optional<GaussianFit> star_;
};

std::vector<std::string> divergence_names() {
  std::vector<std::string> names;
  for (Kind k : all_kinds()) names.push_back(divergence(k).name);
  return names;
}

}  // namespace

RecipeInfo recipe_info() {
  RecipeInfo info;
  info.name = "fgan";
  info.add_keys = [](Schema& s) {
    s.add_string("fgan.divergence", "gan", "f-divergence (the paper's table)", divergence_names())
        .add_string("fgan.update", "single",
                    "single: Algorithm 1, both players from one backward, one gradient reduction; alternating: "
                    "V step then G step, two reductions",
                    {"single", "alternating"})
        .add_string("fgan.generator_objective", "saddle",
                    "saddle: G descends F (Algorithm 1); practical: G ascends E_Q[g_f(V(G(z)))]",
                    {"saddle", "practical"})
        .add_string("fgan.model", "mlp",
                    "mlp: the paper's MNIST pair; dcgan: DCGAN generator and discriminator (LSUN); gaussian: the 1-D "
                    "experiment (its own data: the paper's mixture, data.path unused)",
                    {"mlp", "dcgan", "gaussian"})
        .add_int("fgan.z_dim", 100, "latent dimensions (mlp, dcgan)", 1)
        .add_int("fgan.g_hidden", 1200, "mlp generator: units per hidden layer", 1)
        .add_int("fgan.v_hidden", 240, "mlp / gaussian variational function: units per hidden layer", 1)
        .add_real("fgan.g_init", 0.05, "mlp generator: weights uniform in +-g_init, biases 0 (0: LibTorch default)", 0)
        .add_real("fgan.v_init", 0.005,
                  "mlp / gaussian variational function: weights uniform in +-v_init, biases 0 (0: LibTorch default)", 0)
        .add_int("fgan.g_width", 128, "dcgan generator channels before the output layer", 1)
        .add_int("fgan.d_width", 128, "dcgan discriminator channels at its first layer (128: DCGAN's)", 1)
        .add_real("fgan.beta1", 0.5, "Adam beta1", 0, 1)
        .add_real("fgan.mu0", 0.0, "gaussian: initial mu")
        .add_real("fgan.sigma0", 1.0, "gaussian: initial sigma", 1e-6);
  };
  info.create = [](const RecipeEnv& env) { return std::make_unique<FganRecipe>(env); };
  info.synthetic_data = [](const Config& c, const SourceSpec& spec) -> std::optional<SyntheticData> {
    if (c.str("fgan.model") != "gaussian") return std::nullopt;
    SyntheticData d;
    d.shape = {1, 1, 1, false};
    d.make_train = [spec](const DataPosition& start) -> std::unique_ptr<BatchSource> {
      return std::make_unique<MixtureSource>(paper_mixture(), spec, 0, start);
    };
    d.make_eval = [spec]() -> std::unique_ptr<BatchSource> {
      return std::make_unique<MixtureSource>(paper_mixture(), spec, 1, DataPosition{});
    };
    return d;
  };
  return info;
}

}  // namespace gantry::fgan
