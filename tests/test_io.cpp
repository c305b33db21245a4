// Typed name dispatch, PNG writing and plots.
#include "helpers.hpp"

#include <gm/io/plot.hpp>
#include <gm/io/png.hpp>
#include <gm/sampler/grids.hpp>
#include <gm/type_list.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>

#include <unistd.h>

TEST_CASE("visit_by_name maps a name to its type and rejects unknown names with the valid ones") {
  using Schedules = gm::type_list<gm::Linear, gm::VP, gm::VE>;
  std::string seen;
  gm::visit_by_name<Schedules>("vp", [&]<class S>() { seen = std::string(gm::Interpolant<S>::name); });
  CHECK(seen == "vp");
  int visited = 0;
  gm::for_each_type<Schedules>([&]<class>() { ++visited; });
  CHECK(visited == 3);
  CHECK(gm::names(Schedules{}) == "linear, vp, ve");
  try {
    gm::visit_by_name<Schedules>("vpp", []<class>() {}, "schedule");
    FAIL("expected gm::Error");
  } catch (const gm::Error& e) {
    CHECK(std::string(e.what()) == "gm: unknown schedule 'vpp' (expected one of: linear, vp, ve)");
  }
}

TEST_CASE("write_png writes a valid PNG that keeps every pixel") {
  gm::io::Image img(7, 3);
  img.set(0, 0, {255, 0, 0});
  img.set(6, 2, {0, 0, 255});
  img.set(10, 10, {1, 2, 3});  // outside: ignored
  const auto path = std::filesystem::temp_directory_path() / ("gm_test_" + std::to_string(::getpid()) + ".png");
  gm::io::write_png(path, img);
  std::ifstream f(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::filesystem::remove(path);
  REQUIRE(bytes.size() > 33);
  CHECK(bytes.substr(0, 8) == std::string("\x89PNG\r\n\x1a\n", 8));
  CHECK(bytes.substr(12, 4) == "IHDR");
  auto u32 = [&](size_t at) {
    return (uint32_t(uint8_t(bytes[at])) << 24) | (uint32_t(uint8_t(bytes[at + 1])) << 16) |
           (uint32_t(uint8_t(bytes[at + 2])) << 8) | uint32_t(uint8_t(bytes[at + 3]));
  };
  CHECK(u32(16) == 7);
  CHECK(u32(20) == 3);
  // Decompress the image data and compare with the raster (filter byte 0 before each row).
  const size_t idat = bytes.find("IDAT");
  REQUIRE(idat != std::string::npos);
  const uint32_t len = u32(idat - 4);
  std::string raw(3 * (7 * 3 + 1), '\0');
  uLongf raw_len = raw.size();
  REQUIRE(uncompress(reinterpret_cast<Bytef*>(raw.data()), &raw_len,
                     reinterpret_cast<const Bytef*>(bytes.data() + idat + 4), len) == Z_OK);
  CHECK(raw_len == raw.size());
  CHECK(uint8_t(raw[1]) == 255);
  CHECK(uint8_t(raw[2]) == 0);
  CHECK(uint8_t(raw[2 * 22 + 1 + 6 * 3 + 2]) == 255);  // blue of pixel (6, 2)
  CHECK(bytes.substr(bytes.size() - 8, 4) == "IEND");
  CHECK_THROWS_AS(gm::io::write_png("/nonexistent/dir/x.png", img), gm::Error);
}

TEST_CASE("line_plot draws each series in its own colour inside the axes") {
  gm::io::PlotOptions o;
  o.log_x = o.log_y = true;
  o.title = "test";
  auto img = gm::io::line_plot({{"a", {1, 10, 100}, {1, 0.1, 0.01}}, {"b", {1, 100}, {0.5, -1}}}, o);
  CHECK(img.width == o.width);
  int first = 0, second = 0;
  for (size_t i = 0; i + 2 < img.rgb.size(); i += 3) {
    if (img.rgb[i] == 31 && img.rgb[i + 1] == 119 && img.rgb[i + 2] == 180) ++first;
    if (img.rgb[i] == 255 && img.rgb[i + 1] == 127 && img.rgb[i + 2] == 14) ++second;
  }
  CHECK(first > 200);   // a line across two decades, markers and the legend swatch
  CHECK(second > 49);   // series b has one valid point (y = -1 is off a log axis): marker and swatch
}
