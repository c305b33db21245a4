#pragma once
/// @file
/// Typed dispatch from a name to a policy type, over a compile-time list.

#include <gm/error.hpp>

#include <string>
#include <string_view>
#include <utility>

namespace gm {

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

/// Call `f.template operator()<T>()` for the T of `List` whose name is `name`; a `gm::Error` naming
/// `what` and the valid names otherwise.
template <class List, class F>
void visit_by_name(std::string_view name, F&& f, std::string_view what = "name") {
  bool found = false;
  [&]<class... Ts>(type_list<Ts...>) {
    ((!found && Ts::name == name ? (found = true, f.template operator()<Ts>(), 0) : 0), ...);
  }(List{});
  if (!found) {
    throw Error("gm: unknown " + std::string(what) + " '" + std::string(name) + "' (expected one of: " +
                names(List{}) + ")");
  }
}

/// Call `f.template operator()<T>()` for every T of `List`, in order.
template <class List, class F>
void for_each_type(F&& f) {
  [&]<class... Ts>(type_list<Ts...>) { (f.template operator()<Ts>(), ...); }(List{});
}

}  // namespace gm
