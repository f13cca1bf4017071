// Typed, validated configuration: a Schema declares every key ("section.key", type, default, help,
// allowed values); load_config() reads an INI file and `--section.key value` overrides (the command
// line wins), rejects unknown keys and bad values with UsageError (exit 2), and returns a Config whose
// getters never fail on a validated key. Recipes extend the schema with their own section.
//
//   Schema s;  s.add_int("train.steps", 1000, "total optimizer steps");
//   Config c = load_config(s, "experiments/x.ini", {{"train.steps", "50"}});
//   int64_t steps = c.int64("train.steps");
//
// Boost.Program_options is an implementation detail of config.cpp (and launch/), never of callers.
#pragma once

#include <cstdint>
#include <map>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

namespace gantry {

enum class KeyType { kString, kInt, kReal, kBool };

struct KeySpec {
  std::string key;            // "section.key"
  KeyType type;
  std::string default_value;  // as text
  std::string help;
  std::vector<std::string> choices;  // empty: any value of the type
  double min = -1e300, max = 1e300;  // numeric bounds (inclusive)
};

class Schema {
 public:
  Schema& add_string(const std::string& key, const std::string& def, const std::string& help,
                     std::vector<std::string> choices = {});
  Schema& add_int(const std::string& key, int64_t def, const std::string& help, double min = -1e300,
                  double max = 1e300);
  Schema& add_real(const std::string& key, double def, const std::string& help, double min = -1e300,
                   double max = 1e300);
  Schema& add_bool(const std::string& key, bool def, const std::string& help);

  const std::vector<KeySpec>& keys() const { return keys_; }
  const KeySpec* find(const std::string& key) const;
  // Every key with its default and help, grouped by section (for --help).
  void print_help(std::ostream& out) const;

 private:
  Schema& add(KeySpec spec);
  std::vector<KeySpec> keys_;
};

class Config {
 public:
  Config() = default;
  explicit Config(const Schema& schema);  // all defaults

  const std::string& str(const std::string& key) const;
  int64_t int64(const std::string& key) const;
  double real(const std::string& key) const;
  bool flag(const std::string& key) const;
  bool has(const std::string& key) const { return values_.count(key) != 0; }

  // Sets and validates one key (UsageError naming the key on a bad value or unknown key).
  void set(const std::string& key, const std::string& value);

  // The resolved configuration as an INI file (sections in key order) and as an aligned table.
  std::string to_ini() const;
  void print_table(std::ostream& out) const;
  const std::map<std::string, std::string>& values() const { return values_; }

 private:
  const KeySpec& spec(const std::string& key) const;
  std::vector<KeySpec> specs_;
  std::map<std::string, std::string> values_;
};

// Reads `ini_path` (empty: none) then applies `overrides` (key without leading dashes, value).
// Unknown keys, unreadable files and invalid values throw UsageError naming the file or key.
Config load_config(const Schema& schema, const std::string& ini_path,
                   const std::vector<std::pair<std::string, std::string>>& overrides);
// The same from INI text (e.g. a checkpoint's resolved configuration); `source` names it in errors.
Config load_config_text(const Schema& schema, const std::string& ini_text, const std::string& source,
                        const std::vector<std::pair<std::string, std::string>>& overrides);

// Validates and normalises one value for its spec ("1e3" for an int is rejected, "yes" → "true").
std::string normalise_value(const KeySpec& spec, const std::string& value);

}  // namespace gantry
