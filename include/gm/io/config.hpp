#pragma once
/// @file
/// Typed experiment configuration: defaults, then a TOML file, then the command line.

#include <gm/detail/compiled.hpp>
#include <gm/error.hpp>
#include <gm/type_list.hpp>
#include <gm/io/file.hpp>
#include <gm/io/toml.hpp>

#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#if GM_HEADER_DEFINITIONS  // what only the definitions need
#include <CLI/CLI.hpp>
#include <gm/io/cli.hpp>
#endif

namespace gm {

/// An experiment's configuration: every key is declared with a type, a default, a help text and an
/// optional check; values come from the defaults, then a TOML file (`--config FILE`), then the command line
/// (`--section.key=value`), each overriding the one before.
///
/// TOML sections map to dotted names: `[training] steps = 100` sets `training.steps`, as does
/// `--training.steps=100`.  (CLI11's own config reader ignores section keys silently; gm reads the file with
/// toml++ instead.)  An unknown key, a value of the wrong type or one that fails its check is a one-line
/// `gm::Error` naming the file and position or the flag, before anything is written.
///
/// Example:
/// @code
/// gm::Config cfg("Rectified flow on 2-D toys");
/// cfg.add<int64_t>("training.steps", 2000, "optimiser steps", gm::check::at_least(1));
/// cfg.add<std::string>("data.name", "checkerboard", "dataset", gm::check::one_of({"checkerboard", "moons"}));
/// if (auto code = cfg.parse(argc, argv)) return *code;
/// auto steps = cfg.get<int64_t>("training.steps");
/// @endcode
class Config {
 public:
  using Value = std::variant<bool, int64_t, double, std::string>;
  /// A check returns an empty string when the value is fine, else what was expected.
  using Check = std::function<std::string(const Value&)>;

  explicit Config(std::string description) : description_(std::move(description)) {}

  /// Declare a key with its default.  T is bool, int64_t, double or std::string.
  template <class T>
  Config& add(const std::string& name, T default_value, std::string help, Check check = {}) {
    static_assert(std::is_same_v<T, bool> || std::is_same_v<T, int64_t> || std::is_same_v<T, double> ||
                      std::is_same_v<T, std::string>,
                  "gm: Config keys are bool, int64_t, double or std::string.");
    if (entries_.count(name)) throw Error("gm: config key '" + name + "' declared twice");
    order_.push_back(name);
    entries_[name] = Entry{Value(std::move(default_value)), std::move(help), std::move(check), "default"};
    return *this;
  }

  /// Change the default of a declared key (an example's own default for a standard key); the value must
  /// have the key's type and pass its check.
  template <class T>
  Config& set_default(const std::string& name, T value) {
    auto& e = entry(name, "set_default");
    Value v;
    if constexpr (std::is_convertible_v<T, std::string> && !std::is_same_v<T, bool>) v = std::string(value);
    else if constexpr (std::is_same_v<T, bool>) v = value;
    else if constexpr (std::is_integral_v<T>) v = static_cast<int64_t>(value);
    else v = static_cast<double>(value);
    if (v.index() != e.value.index()) throw Error("gm: set_default: key '" + name + "' has another type");
    commit(name, std::move(v), "default");
    return *this;
  }

  /// Parse `--config FILE` and every `--key=value`; returns the exit code when the program should stop
  /// (0 after --help, 2 after a one-line error), nothing when it should go on.
  std::optional<int> parse(int argc, char** argv);

  /// Apply a TOML file's values; unknown keys, wrong types and failed checks throw `gm::Error`.
  void load_file(const std::filesystem::path& file);
  /// Apply TOML text's values, as `load_file` does; `file` names the text in errors.
  void load_text(std::string_view text, const std::filesystem::path& file) { apply_table(file, io::parse_toml(text, file), ""); }

  /// What `parse` noted without refusing (a flag given twice: the last value counts), for the run's log.
  const std::vector<std::string>& notes() const { return notes_; }

  /// The declared key nearest to `name` by edit distance (at most a third of its length away), or "".
  std::string nearest_key(const std::string& name) const;

  /// Make `file` the base: its values replace the defaults and earlier file values, while values given as
  /// command-line flags keep winning.  Used to resume, sample or evaluate a run with its own config.  Returns
  /// one line for each flag that changes the file's value ("changed training.steps from 3000 to 6000") and
  /// for each earlier file value the base replaced ("... in configs/x.toml ignored: the run has ...").
  std::vector<std::string> rebase(const std::filesystem::path& file);

  /// Set `name` from text, as the command line does; `origin` names the source in errors.
  void set_from_string(const std::string& name, const std::string& text, const std::string& origin);

  /// The value of `name` as T (T must be the declared type).
  template <class T>
  T get(const std::string& name) const {
    auto it = entries_.find(name);
    if (it == entries_.end()) throw Error("gm: no config key '" + name + "'");
    if (const T* p = std::get_if<T>(&it->second.value)) return *p;
    throw Error("gm: config key '" + name + "' is not of the requested type");
  }

  /// Whether `name` was declared.
  bool has(const std::string& name) const { return entries_.count(name) > 0; }

  /// The value of `name` as text.
  std::string text(const std::string& name) const { return to_string(entries_.at(name).value); }

  /// Where `name`'s value came from: "default", the file, or the flag.
  const std::string& source(const std::string& name) const { return entries_.at(name).source; }

  /// Every key in declaration order.
  const std::vector<std::string>& keys() const { return order_; }

  /// The fully resolved configuration as TOML, keys grouped into their sections; it loads back with
  /// `load_file` to the same values.
  std::string to_toml() const;

  /// The value as text ("true", "3", "0.001", "name").
  static std::string to_string(const Value& v);

 private:
  struct Entry {
    Value value;
    std::string help;
    Check check;
    std::string source;
  };

  Entry& entry(const std::string& name, const std::string& origin);

  void commit(const std::string& name, Value v, const std::string& origin);

  static std::string toml_literal(const Value& v);

  /// One canonical text for a TOML array, whichever source it came from.
  static std::string array_text(const toml::array& arr);
  /// Parse `text` as a TOML array and return its canonical text; sets `err` if it is not one.
  static std::string canonical_array(const std::string& text, std::string& err);

  void apply_table(const std::filesystem::path& file, const toml::table& tbl, const std::string& prefix);

  std::string description_;
  std::vector<std::string> notes_;
  std::vector<std::string> order_;
  std::map<std::string, Entry> entries_;
};

#if GM_HEADER_DEFINITIONS
GM_INLINE auto Config::parse(int argc, char** argv) -> std::optional<int> {
  // CLI11 reads `--key=` as `--key` and takes the next argument as its value (`--workdir= --mode=check` made a
  // folder named --mode=check): an empty value is refused first.
  // Then: an unknown flag is refused with the nearest key, and a flag given twice keeps its last value (an
  // earlier one is dropped before CLI11, which refuses repeats).
  std::vector<char*> args{argv[0]};
  std::map<std::string, std::pair<size_t, size_t>> seen;  // flag -> where its earlier occurrence sits in args
  notes_.clear();
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg.size() > 3 && arg.rfind("--", 0) == 0 && arg.back() == '=' && arg.find('=') == arg.size() - 1) {
      const std::string flag(arg.substr(0, arg.size() - 1));
      std::fprintf(stderr, "gm: %s= has no value; write %s=VALUE\n", flag.c_str(), flag.c_str());
      return 2;
    }
    if (arg.size() <= 2 || arg.rfind("--", 0) != 0) {
      args.push_back(argv[i]);
      continue;
    }
    const std::string name(arg.substr(2, arg.find('=') == std::string_view::npos ? arg.npos : arg.find('=') - 2));
    if (name != "help" && name != "config" && !entries_.count(name)) {
      const auto near = nearest_key(name);
      std::fprintf(stderr, "gm: unknown flag %s%s\n", std::string(arg).c_str(),
                   near.empty() ? " (--help lists the keys)" : ("; did you mean --" + near + "?").c_str());
      return 2;
    }
    const size_t at = args.size();
    args.push_back(argv[i]);
    const bool value_next = arg.find('=') == std::string_view::npos && name != "help" && i + 1 < argc;
    if (value_next) args.push_back(argv[++i]);
    if (const auto it = seen.find(name); it != seen.end()) {
      for (size_t k = it->second.first; k < it->second.second; ++k) args[k] = nullptr;
      notes_.push_back("--" + name + " given more than once: the last value counts");
    }
    seen[name] = {at, args.size()};
  }
  std::erase(args, nullptr);
  argc = static_cast<int>(args.size());
  argv = args.data();
  CLI::App app{description_};
  std::string file;
  app.add_option("--config", file, "TOML config file; the command line overrides its values");
  std::map<std::string, std::string> raw;
  for (const auto& name : order_) {
    auto& e = entries_.at(name);
    // The value is read as text and checked by the key's own type; --help shows that type, not CLI11's TEXT.
    static const char* const type_names[] = {"BOOL", "INT", "FLOAT", "TEXT"};
    app.add_option("--" + name, raw[name], e.help + " (default: " + to_string(e.value) + ")")
        ->type_name(type_names[e.value.index()]);
  }
  if (auto code = io::parse_args(app, argc, argv)) return code;
  try {
    if (!file.empty()) load_file(file);
    for (const auto& name : order_) {
      if (app.count("--" + name) > 0) set_from_string(name, raw.at(name), "--" + name);
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 2;
  }
  return std::nullopt;
}

GM_INLINE void Config::load_file(const std::filesystem::path& given) {
  const auto file = io::find_data_file(given);  // configs/x.toml from any folder: gm's own configs
  if (file != given) notes_.push_back("config file " + given.string() + ": not in the working folder; read " + file.string());
  const toml::table tbl = io::read_toml(file);
  apply_table(file, tbl, "");
}

GM_INLINE auto Config::nearest_key(const std::string& name) const -> std::string {
  return nearest_name(name, order_);
}

GM_INLINE auto Config::rebase(const std::filesystem::path& file) -> std::vector<std::string> {
  std::map<std::string, std::pair<Value, std::string>> before;  // value and source, ahead of the base
  for (const auto& name : order_) before.emplace(name, std::pair(entries_.at(name).value, entries_.at(name).source));
  load_file(file);
  std::vector<std::string> notes;
  for (const auto& name : order_) {
    const auto& [value, src] = before.at(name);
    const std::string base = to_string(entries_.at(name).value), given = to_string(value);
    if (src.rfind("--", 0) == 0) {
      if (given != base) notes.push_back("changed " + name + " from " + base + " to " + given + " (" + src + ")");
      commit(name, value, src);
    } else if (src != "default" && given != base) {
      notes.push_back(name + " = " + given + " (" + src + ") ignored: the run has " + base + "; --" + name +
                      "=... changes it");
    }
  }
  return notes;
}

GM_INLINE void Config::set_from_string(const std::string& name, const std::string& text, const std::string& origin) {
  auto& e = entry(name, origin);
  Value v = e.value;
  std::string err;
  std::visit(
      [&](auto& cur) {
        using T = std::decay_t<decltype(cur)>;
        if constexpr (std::is_same_v<T, bool>) {
          if (text == "true" || text == "1") v = true;
          else if (text == "false" || text == "0") v = false;
          else err = "expected true or false";
        } else if constexpr (std::is_same_v<T, int64_t>) {
          char* end = nullptr;
          errno = 0;
          const long long x = std::strtoll(text.c_str(), &end, 10);
          if (text.empty() || *end != '\0' || errno == ERANGE) err = "expected an integer";
          else v = static_cast<int64_t>(x);
        } else if constexpr (std::is_same_v<T, double>) {
          char* end = nullptr;
          const double x = std::strtod(text.c_str(), &end);
          if (text.empty() || *end != '\0' || !std::isfinite(x)) err = "expected a finite number";
          else v = x;
        } else if (!text.empty() && text.front() == '[') {
          v = canonical_array(text, err);  // a list such as an LR schedule
        } else {
          v = text;
        }
      },
      v);
  if (!err.empty()) throw Error("gm: " + origin + ": '" + text + "': " + err);
  commit(name, std::move(v), origin);
}

GM_INLINE auto Config::to_toml() const -> std::string {
  std::map<std::string, std::vector<std::pair<std::string, std::string>>> sections;
  std::vector<std::pair<std::string, std::string>> top;
  for (const auto& name : order_) {
    const auto dot = name.rfind('.');
    const std::string lit = toml_literal(entries_.at(name).value);
    if (dot == std::string::npos) top.emplace_back(name, lit);
    else sections[name.substr(0, dot)].emplace_back(name.substr(dot + 1), lit);
  }
  std::ostringstream os;
  for (const auto& [k, v] : top) os << k << " = " << v << '\n';
  for (const auto& [sec, kvs] : sections) {
    os << "\n[" << sec << "]\n";
    for (const auto& [k, v] : kvs) os << k << " = " << v << '\n';
  }
  return os.str();
}

GM_INLINE auto Config::to_string(const Value& v) -> std::string {
  return std::visit(
      [](const auto& x) -> std::string {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, bool>) return x ? "true" : "false";
        else if constexpr (std::is_same_v<T, int64_t>) return std::to_string(x);
        else if constexpr (std::is_same_v<T, double>) {
          // The shortest of 15 or 17 significant digits that reads back as the same double.
          std::ostringstream os;
          os.precision(15);
          os << x;
          if (std::strtod(os.str().c_str(), nullptr) != x) {
            os.str("");
            os.precision(17);
            os << x;
          }
          return os.str();
        } else return x;
      },
      v);
}

GM_INLINE auto Config::entry(const std::string& name, const std::string& origin) -> Entry& {
  auto it = entries_.find(name);
  if (it == entries_.end()) throw Error("gm: " + origin + ": unknown key '" + name + "'");
  return it->second;
}

GM_INLINE void Config::commit(const std::string& name, Value v, const std::string& origin) {
  auto& e = entries_.at(name);
  if (e.check) {
    const std::string why = e.check(v);
    if (!why.empty()) throw Error("gm: " + origin + ": " + name + " = " + to_string(v) + ": expected " + why);
  }
  e.value = std::move(v);
  e.source = origin;
}

GM_INLINE auto Config::toml_literal(const Value& v) -> std::string {
  if (const auto* s = std::get_if<std::string>(&v)) {
    // Strings holding a TOML array (LR schedules) stay arrays; others are quoted.
    if (!s->empty() && s->front() == '[') return *s;
    std::string out = "\"";
    for (char c : *s) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    return out + "\"";
  }
  return to_string(v);
}

GM_INLINE auto Config::array_text(const toml::array& arr) -> std::string {
  std::ostringstream os;
  os << arr;
  return os.str();
}

GM_INLINE auto Config::canonical_array(const std::string& text, std::string& err) -> std::string {
  try {
    auto tbl = toml::parse("v = " + text);
    if (const auto* arr = tbl["v"].as_array()) return array_text(*arr);
  } catch (const toml::parse_error&) {
  }
  err = "expected a TOML array such as [[3000, 1e-3], [6000, 1e-4]]";
  return text;
}

GM_INLINE void Config::apply_table(const std::filesystem::path& file, const toml::table& tbl,
                                   const std::string& prefix) {
  for (const auto& [k, node] : tbl) {
    const std::string name = prefix + std::string(k.str());
    if (const auto* sub = node.as_table()) {
      apply_table(file, *sub, name + ".");
      continue;
    }
    const std::string origin = io::where(file, node.source());
    auto it = entries_.find(name);
    if (it == entries_.end()) {
      const auto near = nearest_key(name);
      io::key_error_at(file, k.source(), name, near.empty() ? "unknown key" : "unknown key; did you mean " + near + "?");
    }
    Value v = it->second.value;
    std::string expected;
    if (std::holds_alternative<bool>(v)) {
      if (auto b = node.value_exact<bool>()) v = *b;
      else expected = "true or false";
    } else if (std::holds_alternative<int64_t>(v)) {
      if (auto i = node.value_exact<int64_t>()) v = *i;
      else expected = "an integer";
    } else if (std::holds_alternative<double>(v)) {
      if (auto d = node.value<double>(); d && !node.is_string() && !node.is_boolean() && std::isfinite(*d)) v = *d;
      else expected = "a finite number";
    } else {
      if (auto s = node.value_exact<std::string>()) {
        v = *s;
        if (!s->empty() && s->front() == '[') {  // a quoted list reads as the same value as the list itself
          std::string err;
          v = canonical_array(*s, err);
          if (!err.empty()) expected = err.substr(9);  // "expected " is added below
        }
      } else if (const auto* arr = node.as_array()) {
        v = array_text(*arr);
      } else {
        expected = "a string";
      }
    }
    if (!expected.empty()) io::key_error(file, &node, name, "expected " + expected);
    commit(name, std::move(v), origin + ": key '" + name + "'");
  }
}
#endif  // GM_HEADER_DEFINITIONS

/// Checks for `Config::add`.
namespace check {

/// An integer or number key's value as a double.
double number_of(const Config::Value& v);
#if GM_HEADER_DEFINITIONS
GM_INLINE double number_of(const Config::Value& v) {
  return std::holds_alternative<int64_t>(v) ? static_cast<double>(std::get<int64_t>(v)) : std::get<double>(v);
}
#endif

/// An integer or number >= lo.
Config::Check at_least(double lo);
#if GM_HEADER_DEFINITIONS
GM_INLINE Config::Check at_least(double lo) {
  return [lo](const Config::Value& v) -> std::string {
    const double x = number_of(v);
    return x >= lo ? "" : "a value >= " + Config::to_string(lo);
  };
}
#endif
/// An integer or number in [lo, hi].
Config::Check in_range(double lo, double hi);
#if GM_HEADER_DEFINITIONS
GM_INLINE Config::Check in_range(double lo, double hi) {
  return [lo, hi](const Config::Value& v) -> std::string {
    const double x = number_of(v);
    return (x >= lo && x <= hi) ? "" : "a value in [" + Config::to_string(lo) + ", " + Config::to_string(hi) + "]";
  };
}
#endif
/// A number > 0 that float32 can hold (<= 3.4e38): rates and scales that enter float32 arithmetic.
Config::Check positive();
#if GM_HEADER_DEFINITIONS
GM_INLINE Config::Check positive() {
  return [](const Config::Value& v) -> std::string {
    const double x = number_of(v);
    return x > 0 && x <= 3.4028234663852886e38 ? "" : "a value > 0 that float32 can hold (<= 3.4e38)";
  };
}
#endif
/// A finite number (guidance scales, which may be negative or zero).
Config::Check finite();
#if GM_HEADER_DEFINITIONS
GM_INLINE Config::Check finite() {
  return [](const Config::Value& v) -> std::string {
    const double x = number_of(v);
    return std::isfinite(x) ? "" : "a finite number";
  };
}
#endif
/// A string among `choices`.
Config::Check one_of(std::vector<std::string> choices);
#if GM_HEADER_DEFINITIONS
GM_INLINE Config::Check one_of(std::vector<std::string> choices) {
  return [choices](const Config::Value& v) -> std::string {
    const auto& s = std::get<std::string>(v);
    std::string list;
    for (const auto& c : choices) {
      if (c == s) return "";
      list += (list.empty() ? "" : ", ") + c;
    }
    return "one of: " + list;
  };
}
#endif

}  // namespace check
}  // namespace gm
