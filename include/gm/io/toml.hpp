#pragma once
/// @file
/// Reading TOML files with one-line errors that name the file, the key and the position.

#include <gm/detail/compiled.hpp>
#include <gm/error.hpp>

#include <toml++/toml.h>

#include <filesystem>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace gm::io {

/// "file:line:col" for a node that has a source position, else "file".
std::string where(const std::filesystem::path& file, const toml::source_region& src);
#if GM_HEADER_DEFINITIONS
GM_INLINE std::string where(const std::filesystem::path& file, const toml::source_region& src) {
  std::ostringstream os;
  os << file.string();
  if (src.begin.line > 0) os << ':' << src.begin.line << ':' << src.begin.column;
  return os.str();
}
#endif

/// Parse TOML text; a syntax error becomes a one-line `gm::Error` naming `file` (where the text came from).
toml::table parse_toml(std::string_view text, const std::filesystem::path& file);
#if GM_HEADER_DEFINITIONS
GM_INLINE toml::table parse_toml(std::string_view text, const std::filesystem::path& file) {
  try {
    return toml::parse(text, file.string());
  } catch (const toml::parse_error& e) {
    throw Error("gm: " + where(file, e.source()) + ": TOML syntax error: " + std::string(e.description()));
  }
}
#endif

/// Parse a TOML file; a missing file or a syntax error becomes a one-line `gm::Error`.
toml::table read_toml(const std::filesystem::path& file);
#if GM_HEADER_DEFINITIONS
GM_INLINE toml::table read_toml(const std::filesystem::path& file) {
  std::error_code ec;
  if (std::filesystem::is_directory(file, ec)) throw Error("gm: " + file.string() + ": is a folder, not a TOML file");
  if (!std::filesystem::is_regular_file(file, ec)) {
    throw Error("gm: " + file.string() + ": no such file");
  }
  try {
    return toml::parse_file(file.string());
  } catch (const toml::parse_error& e) {
    throw Error("gm: " + where(file, e.source()) + ": TOML syntax error: " + std::string(e.description()));
  }
}
#endif

/// Throw `gm::Error` "file:line:col: key 'k': message" for a position in the file.
[[noreturn]] inline void key_error_at(const std::filesystem::path& file, const toml::source_region& src,
                                      std::string_view key, std::string_view message) {
  throw Error("gm: " + where(file, src) + ": key '" + std::string(key) + "': " + std::string(message));
}

/// Throw `gm::Error` "file:line:col: key 'k': message" for a node of the file (or the file alone).
[[noreturn]] inline void key_error(const std::filesystem::path& file, const toml::node* node, std::string_view key,
                                   std::string_view message) {
  if (node) key_error_at(file, node->source(), key, message);
  throw Error("gm: " + file.string() + ": key '" + std::string(key) + "': " + std::string(message));
}

/// Reject any key of `table` not listed in `allowed`.
void check_keys(const std::filesystem::path& file, const toml::table& table,
                const std::vector<std::string_view>& allowed);
#if GM_HEADER_DEFINITIONS
GM_INLINE void check_keys(const std::filesystem::path& file, const toml::table& table,
                          const std::vector<std::string_view>& allowed) {
  for (const auto& [k, v] : table) {
    bool ok = false;
    for (auto a : allowed) ok = ok || (k.str() == a);
    if (!ok) {
      std::string list;
      for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
      key_error_at(file, k.source(), k.str(), "unknown key (expected one of: " + list + ")");
    }
  }
}
#endif

/// The number at `node` (integer or float) as a double, or an error naming `key`.
double number(const std::filesystem::path& file, const toml::node& node, std::string_view key);
#if GM_HEADER_DEFINITIONS
GM_INLINE double number(const std::filesystem::path& file, const toml::node& node, std::string_view key) {
  if (auto d = node.value<double>()) return *d;
  key_error(file, &node, key, "expected a number");
}
#endif

/// The array of numbers at `table[key]`; error if missing, not an array, or holding a non-number.
std::vector<double> number_array(const std::filesystem::path& file, const toml::table& table,
                                 std::string_view key);
#if GM_HEADER_DEFINITIONS
GM_INLINE std::vector<double> number_array(const std::filesystem::path& file, const toml::table& table,
                                           std::string_view key) {
  const toml::node* node = table.get(key);
  if (!node) key_error(file, nullptr, key, "missing");
  const toml::array* arr = node->as_array();
  if (!arr) key_error(file, node, key, "expected an array of numbers");
  std::vector<double> out;
  for (const auto& el : *arr) out.push_back(number(file, el, key));
  return out;
}
#endif

/// The array of arrays of numbers at `table[key]`.
std::vector<std::vector<double>> number_matrix(const std::filesystem::path& file, const toml::table& table,
                                               std::string_view key);
#if GM_HEADER_DEFINITIONS
GM_INLINE std::vector<std::vector<double>> number_matrix(const std::filesystem::path& file, const toml::table& table,
                                                         std::string_view key) {
  const toml::node* node = table.get(key);
  if (!node) key_error(file, nullptr, key, "missing");
  const toml::array* arr = node->as_array();
  if (!arr) key_error(file, node, key, "expected an array of arrays of numbers");
  std::vector<std::vector<double>> out;
  for (const auto& row : *arr) {
    const toml::array* r = row.as_array();
    if (!r) key_error(file, &row, key, "expected an array of arrays of numbers");
    std::vector<double> v;
    for (const auto& el : *r) v.push_back(number(file, el, key));
    out.push_back(std::move(v));
  }
  return out;
}
#endif

}  // namespace gm::io
