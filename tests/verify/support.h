// Shared by the verify room's tests: images read back from docker-save
// archives built in memory, and what a check's problems say.
#pragma once
#include <fstream>
#include <list>
#include <string>
#include <vector>

#include "image/image.h"
#include "image_builder.h"
#include "verify/verify.h"

namespace kiln::verify::test {

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

// A saved image (docker save layout) with one layer per item list.
inline image::ImageFs saved_image(const std::vector<std::vector<kiln::testing::TarItem>>& layers) {
  kiln::testing::TestImage img;
  for (const auto& items : layers) img.layers.push_back(kiln::testing::make_tar(items));
  static std::list<std::string> tars;  // the image reads its bytes where they lie: they outlive the test
  tars.push_back(kiln::testing::tar_of(img.docker_save(true)));
  return image::read_image(image::tar_source(kiln::testing::bytes_of(tars.back())));
}

inline bool has_problem(const CheckResult& r, const std::string& part) {
  for (const auto& p : r.problems)
    if (p.find(part) != std::string::npos) return true;
  return false;
}

// Every problem, one a line: for INFO.
inline std::string all(const CheckResult& r) {
  std::string out;
  for (const auto& p : r.problems) out += p + "\n";
  return out;
}

}  // namespace kiln::verify::test
