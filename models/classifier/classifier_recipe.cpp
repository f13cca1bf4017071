#include "classifier/classifier_recipe.h"

#include <torch/torch.h>

#include "classifier/classifier_model.h"
#include "core/errors.h"
#include "train/fused_adam.h"

namespace gantry::classifier {

namespace {

class ClassifierRecipe : public Recipe {
 public:
  explicit ClassifierRecipe(const RecipeEnv& env) : step_(env.step), device_(env.device) {
    const Config& c = env.config;
    if (!env.shape().has_labels)
      throw UsageError("data.path: the dataset has no labels; the classifier needs them (convert with --labels)");
    ClassifierOptions o;
    o.channels = env.shape().channels;
    o.height = env.shape().height;
    o.width = env.shape().width;
    o.classes = c.int64("classifier.classes");
    o.features = c.int64("classifier.features");
    o.dropout = c.real("classifier.dropout");
    try {
      model_ = Classifier(o);
    } catch (const std::invalid_argument& e) {
      throw UsageError(std::string("classifier: ") + e.what());
    }
    model_->to(device_);
    optimizer_ = std::make_unique<FusedAdam>(model_->parameters(), torch::optim::AdamOptions(c.real("train.lr")));
    env.sync.add_group("classifier", {model_.ptr()});
  }

  std::vector<std::pair<std::string, std::shared_ptr<torch::nn::Module>>> networks() override {
    return {{"classifier", model_.ptr()}};
  }
  std::vector<std::pair<std::string, torch::optim::Optimizer*>> optimizers() override {
    return {{"adam", optimizer_.get()}};
  }

  // Mean cross-entropy of this rank's batch (nats); the batch's accuracy is reported beside it.
  Losses train_step(const StepBatches& batches) override {
    const Batch& batch = batches.at(kMainStream);
    auto x = images_to_float(batch.images, device_);
    auto y = labels_of(batch);
    return step_.update("classifier", {optimizer_.get()}, [&](int64_t k) {
      auto logits = model_->forward(step_.micro(x, k));
      auto target = step_.micro(y, k);
      return Losses{{"loss", torch::cross_entropy_loss(logits.to(torch::kFloat32), target)},
                    {"accuracy", logits.argmax(1).eq(target).to(torch::kFloat32).mean()}};
    });
  }

  torch::Tensor sample(int64_t, at::Generator&) override { return {}; }  // not a generative model

  // The 128-d embedding before the head (after its ReLU), dropout off: gantry eval's feature space.
  torch::Tensor features(const torch::Tensor& images) override {
    torch::NoGradGuard no_grad;
    model_->eval();
    auto f = model_->features(images.to(device_)).to(torch::kFloat32);
    model_->train();
    return f;
  }

  // Held-out cross-entropy, accuracy and error rate (dropout off).
  Losses evaluate(BatchSource& eval, int64_t batches, uint64_t) override {
    torch::NoGradGuard no_grad;
    model_->eval();
    auto zero = torch::zeros({}, torch::TensorOptions(device_).dtype(torch::kFloat64));
    auto loss = zero.clone(), correct = zero.clone();
    int64_t n = 0;
    for (int64_t i = 0; i < batches; ++i) {
      Batch b = eval.next();
      auto logits = model_->forward(images_to_float(b.images, device_)).to(torch::kFloat32);
      auto y = labels_of(b);
      loss += torch::cross_entropy_loss(logits, y, {}, at::Reduction::Sum).to(torch::kFloat64);
      correct += logits.argmax(1).eq(y).sum().to(torch::kFloat64);
      n += y.size(0);
    }
    model_->train();
    const double count = static_cast<double>(n);
    return {{"eval_loss", loss / count}, {"eval_accuracy", correct / count}, {"eval_error", 1 - correct / count}};
  }

 private:
  torch::Tensor labels_of(const Batch& batch) const {
    // Checked on the loader's CPU tensor (no device synchronisation); labels already on a GPU are not.
    const auto& labels = batch.labels;
    const int64_t classes = model_->options().classes;
    if (labels.is_cpu() && labels.numel() > 0 &&
        (labels.min().item<int64_t>() < 0 || labels.max().item<int64_t>() >= classes))
      throw UsageError("classifier.classes: a label outside 0.." + std::to_string(classes - 1) +
                       " in the data (set classifier.classes to the dataset's class count)");
    return labels.to(device_, torch::kLong, /*non_blocking=*/true);
  }

  StepContext& step_;
  torch::Device device_;
  Classifier model_{nullptr};
  std::unique_ptr<FusedAdam> optimizer_;
};

}  // namespace

RecipeInfo recipe_info() {
  return {"classifier",
          [](Schema& s) {
            s.add_int("classifier.classes", 10, "number of classes (labels 0..classes-1)", 2)
                .add_int("classifier.features", 128, "width of the embedding layer (the evaluation's features)", 1)
                .add_real("classifier.dropout", 0.5, "dropout before the last layer", 0, 1);
          },
          [](const RecipeEnv& env) { return std::make_unique<ClassifierRecipe>(env); },
          {}};
}

}  // namespace gantry::classifier
