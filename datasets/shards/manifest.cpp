#include "shards/manifest.h"

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "core/fs.h"

namespace gantry::data {

using nlohmann::json;

std::string shard_file_name(size_t index) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "shard-%05zu.h5", index);
  return buf;
}

Manifest read_manifest(const std::string& dir) {
  if (!std::filesystem::is_directory(dir)) throw DataError(at(dir, "no such dataset directory"));
  std::string path = (std::filesystem::path(dir) / "manifest.json").string();
  if (!std::filesystem::exists(path)) throw DataError(at(path, "missing (not a gantry dataset directory?)"));
  json j;
  try {
    j = json::parse(read_file(path));
  } catch (const json::exception& e) {
    throw DataError(at(path, std::string("not valid JSON: ") + e.what()));
  }
  Manifest m;
  try {
    m.version = j.at("version").get<int>();
    if (m.version != kFormatVersion)
      throw DataError(at(path, "format version " + std::to_string(m.version) + " (this gantry reads " +
                                   std::to_string(kFormatVersion) + ")"));
    auto shape = j.at("shape").get<std::vector<int64_t>>();
    if (shape.size() != 3 || shape[0] <= 0 || shape[1] <= 0 || shape[2] <= 0)
      throw DataError(at(path, "\"shape\" must be [H, W, C] with positive sizes"));
    m.height = shape[0];
    m.width = shape[1];
    m.channels = shape[2];
    m.count = j.at("count").get<int64_t>();
    m.has_labels = j.at("has_labels").get<bool>();
    m.source = j.value("source", "");
    int64_t total = 0;
    for (const auto& s : j.at("shards")) {
      ShardInfo info{s.at("file").get<std::string>(), s.at("count").get<int64_t>(), s.at("bytes").get<uint64_t>(),
                     s.at("checksum").get<std::string>()};
      if (info.file.empty() || info.file.find('/') != std::string::npos || info.count <= 0)
        throw DataError(at(path, "bad shard entry '" + info.file + "'"));
      total += info.count;
      m.shards.push_back(std::move(info));
    }
    if (total != m.count)
      throw DataError(at(path, "shard counts add up to " + std::to_string(total) + ", manifest says " +
                                   std::to_string(m.count)));
  } catch (const json::exception& e) {
    throw DataError(at(path, std::string("malformed: ") + e.what()));
  }
  return m;
}

void write_manifest(const std::string& dir, const Manifest& m) {
  json shards = json::array();
  for (const auto& s : m.shards)
    shards.push_back({{"file", s.file}, {"count", s.count}, {"bytes", s.bytes}, {"checksum", s.checksum}});
  json j = {{"format", "gantry-shards"},
            {"version", m.version},
            {"shape", {m.height, m.width, m.channels}},
            {"count", m.count},
            {"has_labels", m.has_labels},
            {"source", m.source},
            {"shards", shards}};
  write_file_atomic((std::filesystem::path(dir) / "manifest.json").string(), j.dump(2) + "\n");
}

}  // namespace gantry::data
