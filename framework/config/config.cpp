#include "config/config.h"

#include <boost/program_options.hpp>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iomanip>
#include <sstream>

#include "core/errors.h"

namespace gantry {

namespace po = boost::program_options;

namespace {

const char* type_name(KeyType t) {
  switch (t) {
    case KeyType::kString: return "string";
    case KeyType::kInt: return "integer";
    case KeyType::kReal: return "number";
    case KeyType::kBool: return "true/false";
  }
  return "?";
}

std::string fmt_real(double v) {
  std::ostringstream ss;
  ss << std::setprecision(10) << v;
  return ss.str();
}

}  // namespace

// ---- Schema --------------------------------------------------------------------------------

Schema& Schema::add(KeySpec spec) {
  if (spec.key.find('.') == std::string::npos) throw std::logic_error("config key without section: " + spec.key);
  if (find(spec.key)) throw std::logic_error("config key declared twice: " + spec.key);
  spec.default_value = normalise_value(spec, spec.default_value);
  keys_.push_back(std::move(spec));
  return *this;
}

Schema& Schema::add_string(const std::string& key, const std::string& def, const std::string& help,
                           std::vector<std::string> choices) {
  return add({key, KeyType::kString, def, help, std::move(choices)});
}
Schema& Schema::add_int(const std::string& key, int64_t def, const std::string& help, double min, double max) {
  return add({key, KeyType::kInt, std::to_string(def), help, {}, min, max});
}
Schema& Schema::add_real(const std::string& key, double def, const std::string& help, double min, double max) {
  return add({key, KeyType::kReal, fmt_real(def), help, {}, min, max});
}
Schema& Schema::add_bool(const std::string& key, bool def, const std::string& help) {
  return add({key, KeyType::kBool, def ? "true" : "false", help, {}});
}

const KeySpec* Schema::find(const std::string& key) const {
  for (const auto& k : keys_)
    if (k.key == key) return &k;
  return nullptr;
}

void Schema::print_help(std::ostream& out) const {
  std::map<std::string, std::vector<const KeySpec*>> sections;
  for (const auto& k : keys_) sections[k.key.substr(0, k.key.find('.'))].push_back(&k);
  for (const auto& [section, keys] : sections) {
    out << "\n[" << section << "]\n";
    for (const KeySpec* k : keys) {
      std::string left = "  --" + k->key + " " + (k->choices.empty() ? type_name(k->type) : "CHOICE");
      out << std::left << std::setw(40) << left << " " << k->help
          << " (default: " << (k->default_value.empty() ? "\"\"" : k->default_value) << ")";
      if (!k->choices.empty()) {
        out << " {";
        for (size_t i = 0; i < k->choices.size(); ++i) out << (i ? "|" : "") << k->choices[i];
        out << "}";
      }
      out << "\n";
    }
  }
}

// ---- values --------------------------------------------------------------------------------

std::string normalise_value(const KeySpec& spec, const std::string& raw) {
  auto bad = [&](const std::string& why) { return UsageError(at(spec.key, why + ", got '" + raw + "'")); };
  std::string v = raw;
  while (!v.empty() && std::isspace(static_cast<unsigned char>(v.back()))) v.pop_back();
  while (!v.empty() && std::isspace(static_cast<unsigned char>(v.front()))) v.erase(v.begin());
  switch (spec.type) {
    case KeyType::kString: break;
    case KeyType::kInt: {
      errno = 0;
      char* end = nullptr;
      long long x = std::strtoll(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || errno == ERANGE) throw bad("expected an integer");
      if (static_cast<double>(x) < spec.min || static_cast<double>(x) > spec.max)
        throw bad("must be between " + fmt_real(spec.min) + " and " + fmt_real(spec.max));
      v = std::to_string(x);
      break;
    }
    case KeyType::kReal: {
      errno = 0;
      char* end = nullptr;
      double x = std::strtod(v.c_str(), &end);
      if (v.empty() || *end != '\0' || errno == ERANGE || !std::isfinite(x)) throw bad("expected a number");
      if (x < spec.min || x > spec.max)
        throw bad("must be between " + fmt_real(spec.min) + " and " + fmt_real(spec.max));
      v = fmt_real(x);
      break;
    }
    case KeyType::kBool:
      if (v == "true" || v == "1" || v == "yes" || v == "on")
        v = "true";
      else if (v == "false" || v == "0" || v == "no" || v == "off")
        v = "false";
      else
        throw bad("expected true or false");
      break;
  }
  if (!spec.choices.empty()) {
    bool ok = false;
    std::string list;
    for (const auto& c : spec.choices) {
      ok = ok || c == v;
      list += (list.empty() ? "" : ", ") + c;
    }
    if (!ok) throw bad("expected one of " + list);
  }
  return v;
}

Config::Config(const Schema& schema) : specs_(schema.keys()) {
  for (const auto& k : specs_) values_[k.key] = k.default_value;
}

const KeySpec& Config::spec(const std::string& key) const {
  for (const auto& k : specs_)
    if (k.key == key) return k;
  throw UsageError(at(key, "unknown configuration key"));
}

void Config::set(const std::string& key, const std::string& value) {
  values_[key] = normalise_value(spec(key), value);
}

const std::string& Config::str(const std::string& key) const {
  auto it = values_.find(key);
  if (it == values_.end()) throw std::logic_error("config key not in schema: " + key);
  return it->second;
}
int64_t Config::int64(const std::string& key) const {
  return std::strtoll(str(key).c_str(), nullptr, 10);
}
double Config::real(const std::string& key) const {
  return std::strtod(str(key).c_str(), nullptr);
}
bool Config::flag(const std::string& key) const {
  return str(key) == "true";
}

std::string Config::to_ini() const {
  std::ostringstream out;
  std::string section;
  for (const auto& [key, value] : values_) {
    std::string s = key.substr(0, key.find('.'));
    if (s != section) {
      out << (section.empty() ? "" : "\n") << "[" << s << "]\n";
      section = s;
    }
    out << key.substr(key.find('.') + 1) << " = " << value << "\n";
  }
  return out.str();
}

void Config::print_table(std::ostream& out) const {
  size_t w = 0;
  for (const auto& kv : values_) w = std::max(w, kv.first.size());
  for (const auto& [key, value] : values_) {
    const KeySpec& s = spec(key);
    out << "  " << std::left << std::setw(static_cast<int>(w)) << key << "  " << value
        << (value != s.default_value ? "   *" : "") << "\n";
  }
}

// ---- loading -------------------------------------------------------------------------------

namespace {

Config parse_config(const Schema& schema, std::istream* in, const std::string& source,
                    const std::vector<std::pair<std::string, std::string>>& overrides) {
  Config config(schema);
  if (in) {
    po::options_description desc;
    for (const auto& k : schema.keys()) desc.add_options()(k.key.c_str(), po::value<std::string>());
    po::variables_map vm;
    try {
      po::store(po::parse_config_file(*in, desc, /*allow_unregistered=*/false), vm);
    } catch (const po::unknown_option& e) {
      throw UsageError(at(source, "unknown key '" + e.get_option_name() + "'"));
    } catch (const po::multiple_occurrences& e) {
      throw UsageError(at(source, "key '" + e.get_option_name() + "' given twice"));
    } catch (const po::error& e) {
      throw UsageError(at(source, e.what()));
    }
    for (const auto& [key, value] : vm) {
      try {
        config.set(key, value.as<std::string>());
      } catch (const UsageError& e) {
        throw UsageError(source + ": " + e.what());
      }
    }
  }
  for (const auto& [key, value] : overrides) {
    if (!schema.find(key)) throw UsageError(at("--" + key, "unknown option (see --help for the keys)"));
    config.set(key, value);
  }
  return config;
}

}  // namespace

Config load_config(const Schema& schema, const std::string& ini_path,
                   const std::vector<std::pair<std::string, std::string>>& overrides) {
  if (ini_path.empty()) return parse_config(schema, nullptr, "", overrides);
  std::ifstream in(ini_path);
  if (!in) throw UsageError(at(ini_path, "cannot open configuration file"));
  return parse_config(schema, &in, ini_path, overrides);
}

Config load_config_text(const Schema& schema, const std::string& ini_text, const std::string& source,
                        const std::vector<std::pair<std::string, std::string>>& overrides) {
  std::istringstream in(ini_text);
  return parse_config(schema, &in, source, overrides);
}

}  // namespace gantry
