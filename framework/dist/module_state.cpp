#include "dist/module_state.h"

#include <torch/nn/module.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <sstream>
#include <tuple>

#include "core/errors.h"

namespace gantry {

namespace dist_detail {

namespace {

std::string describe(const TensorSpec& s) {
  std::ostringstream out;
  out << "'" << s.name << "' " << c10::toString(s.tensor.scalar_type()) << " " << s.tensor.sizes();
  return out.str();
}

// One line per tensor; the layout every rank must agree on.
std::string layout(const std::vector<TensorSpec>& specs) {
  std::string text;
  for (const auto& s : specs) text += describe(s) + "\n";
  return text;
}

uint64_t fnv1a(const std::string& text) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : text) h = (h ^ c) * 1099511628211ull;
  return h;
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// The same message on every rank: the first entry (in rank 0's order) where some rank differs.
std::string first_mismatch(const std::vector<std::vector<std::string>>& per_rank) {
  const auto& root = per_rank[0];
  size_t longest = 0;
  for (const auto& l : per_rank) longest = std::max(longest, l.size());
  for (size_t i = 0; i < longest; ++i) {
    for (size_t r = 1; r < per_rank.size(); ++r) {
      const auto& mine = per_rank[r];
      const std::string a = i < root.size() ? root[i] : "nothing", b = i < mine.size() ? mine[i] : "nothing";
      if (a != b) return "rank " + std::to_string(r) + " has " + b + " where rank 0 has " + a;
    }
  }
  return "layouts differ";  // unreachable when the hashes differed
}

}  // namespace

void verify_same_specs(Communicator& comm, const std::vector<TensorSpec>& specs, const std::string& what) {
  const std::string mine = layout(specs);
  torch::Tensor digest = torch::tensor({static_cast<int64_t>(fnv1a(mine)), static_cast<int64_t>(mine.size())});
  torch::Tensor all = comm.all_gather(digest);  // (world, 2)
  if (all.eq(digest.unsqueeze(0)).all().item<bool>()) return;

  // Some rank differs: everyone gathers everyone's layout and names the same first difference.
  const int64_t longest = all.select(1, 1).max().item<int64_t>();
  torch::Tensor text = torch::zeros({longest}, torch::kUInt8);
  std::memcpy(text.data_ptr(), mine.data(), mine.size());
  torch::Tensor texts = comm.all_gather(text);  // (world, longest)
  std::vector<std::vector<std::string>> per_rank;
  for (int64_t r = 0; r < texts.size(0); ++r) {
    const auto* p = static_cast<const char*>(texts[r].data_ptr());
    per_rank.push_back(split_lines(std::string(p, static_cast<size_t>(all[r][1].item<int64_t>()))));
  }
  throw UsageError("dist: " + what + ": ranks built different models: " + first_mismatch(per_rank) +
                   " (every rank must build the same networks from the same configuration)");
}

}  // namespace dist_detail

namespace {

using dist_detail::TensorSpec;

std::vector<TensorSpec> named(const torch::nn::Module& module, bool parameters, bool buffers) {
  std::vector<TensorSpec> specs;
  if (parameters)
    for (const auto& item : module.named_parameters(/*recurse=*/true)) specs.push_back({item.key(), item.value()});
  if (buffers)
    for (const auto& item : module.named_buffers(/*recurse=*/true)) specs.push_back({item.key(), item.value()});
  return specs;
}

bool is_float(const torch::Tensor& t) {
  const auto type = t.scalar_type();
  return type == torch::kFloat || type == torch::kDouble || type == torch::kHalf || type == torch::kBFloat16;
}

enum class Transfer { kBroadcast, kAverage };

// Flattens the tensors into one buffer per (device, dtype), runs one collective per buffer, and copies
// the result back: a few large messages instead of one per tensor.
void coalesced(Communicator& comm, const std::vector<torch::Tensor>& tensors, Transfer how) {
  std::map<std::tuple<int, int, int>, std::vector<torch::Tensor>> groups;  // ordered: same order on every rank
  for (const auto& t : tensors) {
    const auto key = std::make_tuple(static_cast<int>(t.device().type()), static_cast<int>(t.device().index()),
                                     static_cast<int>(t.scalar_type()));
    groups[key].push_back(t);
  }
  torch::NoGradGuard no_grad;
  for (auto& [key, members] : groups) {
    std::vector<torch::Tensor> flat;
    for (const auto& t : members) flat.push_back(t.detach().reshape({-1}));
    torch::Tensor buffer = torch::cat(flat).contiguous();
    if (how == Transfer::kAverage)
      comm.all_reduce(buffer, ReduceOp::kAverage);
    else
      comm.broadcast(buffer, 0);
    int64_t offset = 0;
    for (auto& t : members) {
      t.copy_(buffer.narrow(0, offset, t.numel()).view(t.sizes()));
      offset += t.numel();
    }
  }
}

}  // namespace

void verify_same_structure(Communicator& comm, const torch::nn::Module& module, const std::string& what) {
  dist_detail::verify_same_specs(comm, named(module, true, true), what);
}

void broadcast_state(Communicator& comm, torch::nn::Module& module) {
  const auto specs = named(module, true, true);
  dist_detail::verify_same_specs(comm, specs, module.name());
  if (comm.world_size() == 1) return;
  std::vector<torch::Tensor> tensors;
  for (const auto& s : specs) tensors.push_back(s.tensor);
  coalesced(comm, tensors, Transfer::kBroadcast);
}

void average_buffers(Communicator& comm, torch::nn::Module& module) {
  const auto specs = named(module, false, true);
  dist_detail::verify_same_specs(comm, specs, module.name());
  if (comm.world_size() == 1) return;
  std::vector<torch::Tensor> floats, others;
  for (const auto& s : specs) (is_float(s.tensor) ? floats : others).push_back(s.tensor);
  coalesced(comm, floats, Transfer::kAverage);
  coalesced(comm, others, Transfer::kBroadcast);
}

}  // namespace gantry
