#pragma once
/// @file
/// Typed dispatch from a name to a policy type, over a compile-time list.

#include <gm/error.hpp>

#include <algorithm>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gm {

/// The candidate nearest to `name` by edit distance (Levenshtein), when it is at most a third of `name`'s
/// length away (at least 1), else "": the "did you mean" of keys and policy names.
inline std::string nearest_name(std::string_view name, const std::vector<std::string>& candidates) {
  auto distance = [](std::string_view a, std::string_view b) {
    std::vector<size_t> row(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
      size_t diag = row[0];
      row[0] = i;
      for (size_t j = 1; j <= b.size(); ++j) {
        const size_t up = row[j];
        row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
        diag = up;
      }
    }
    return row[b.size()];
  };
  std::string best;
  size_t best_d = std::max<size_t>(1, name.size() / 3) + 1;
  for (const auto& c : candidates) {
    const size_t d = distance(name, c);
    if (d < best_d) best = c, best_d = d;
  }
  return best;
}

/// A compile-time list of policy types, each with a `static constexpr std::string_view name`.
///
/// Command lines pick policies by name; `visit_by_name` maps the name to the type with no runtime
/// registry: the list is the registry, checked by the compiler.
///
/// Example:
/// @code
/// using Schedules = gm::type_list<gm::Linear, gm::VP, gm::VE>;
/// gm::visit_by_name<Schedules>("vp", [&]<class S>() { run(gm::Interpolant<S>{}); });
/// @endcode
template <class... Ts>
struct type_list {
  static constexpr size_t size = sizeof...(Ts);
};

/// The names of a list's types, comma-separated, for help texts and errors.
template <class... Ts>
std::string names(type_list<Ts...>) {
  std::string out;
  ((out += (out.empty() ? "" : ", ") + std::string(Ts::name)), ...);
  return out;
}

/// Call `f(T::name)` for every T of `List`, in order.
template <class List, class F>
void for_each_name(F&& f) {
  [&]<class... Ts>(type_list<Ts...>) { (f(std::string_view(Ts::name)), ...); }(List{});
}

/// Call `f.template operator()<T>()` for the T of `List` whose name is `name`; a `gm::Error` naming
/// `what` and the valid names otherwise.
template <class List, class F>
void visit_by_name(std::string_view name, F&& f, std::string_view what = "name") {
  bool found = false;
  [&]<class... Ts>(type_list<Ts...>) {
    ((!found && Ts::name == name ? (found = true, f.template operator()<Ts>(), 0) : 0), ...);
  }(List{});
  if (!found) {
    std::vector<std::string> all;
    for_each_name<List>([&](std::string_view n) { all.emplace_back(n); });
    const auto near = nearest_name(name, all);
    throw Error("gm: unknown " + std::string(what) + " '" + std::string(name) + "'" +
                (near.empty() ? "" : "; did you mean '" + near + "'?") + " (expected one of: " + names(List{}) + ")");
  }
}

/// Call `f.template operator()<T>()` for every T of `List`, in order.
template <class List, class F>
void for_each_type(F&& f) {
  [&]<class... Ts>(type_list<Ts...>) { (f.template operator()<Ts>(), ...); }(List{});
}

}  // namespace gm
