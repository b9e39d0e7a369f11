#include <catch2/catch.hpp>

#include "util/cc.h"

using kiln::ArchList;
using kiln::ComputeCapability;
using kiln::Support;

static ComputeCapability cc(const char* s) { return *ComputeCapability::parse(s); }

TEST_CASE("compute capabilities parse in every spelling users write", "[cc]") {
  CHECK(cc("8.6").number() == 86);
  CHECK(cc("sm_86").str() == "8.6");
  CHECK(cc("compute_90").sm() == "sm_90");
  CHECK(cc("sm_100").str() == "10.0");
  CHECK(cc("sm_90a").variant == 'a');
  CHECK(cc("sm_90a").sm() == "sm_90a");
  for (const char* bad : {"", "sm_", "8.", "x.y", "sm_9", "8.10", "0.5"}) CHECK_FALSE(ComputeCapability::parse(bad));
}

TEST_CASE("TORCH_CUDA_ARCH_LIST strings round-trip", "[cc]") {
  auto list = *ArchList::parse("7.5;8.0;8.6;9.0;10.0;12.0+PTX");
  CHECK(list.sass.size() == 6);
  REQUIRE(list.ptx.size() == 1);
  CHECK(list.ptx[0].str() == "12.0");
  CHECK(list.str() == "7.5;8.0;8.6;9.0;10.0;12.0+PTX");
  CHECK_FALSE(ArchList::parse(""));
  CHECK_FALSE(ArchList::parse("7.5;banana"));
}

TEST_CASE("SASS runs on the same major at an equal or higher minor", "[cc]") {
  auto list = *ArchList::parse("7.0;8.0;9.0");
  CHECK(support_for(list, cc("8.6")).support == Support::native);
  CHECK(support_for(list, cc("8.6")).via->sm() == "sm_80");
  CHECK(support_for(list, cc("7.5")).via->sm() == "sm_70");
  CHECK(support_for(list, cc("6.0")).support == Support::unsupported);
  CHECK(support_for(list, cc("10.0")).support == Support::unsupported);  // no PTX to JIT
}

TEST_CASE("PTX JIT-compiles for newer GPUs only", "[cc]") {
  auto list = *ArchList::parse("8.0;9.0+PTX");
  auto b200 = support_for(list, cc("10.0"));
  CHECK(b200.support == Support::ptx_jit);
  CHECK(b200.via->compute() == "compute_90");
  CHECK(support_for(list, cc("7.5")).support == Support::unsupported);
}

TEST_CASE("arch-specific SASS serves only its exact GPU", "[cc]") {
  kiln::ArchList list;
  list.sass.push_back(cc("sm_90a"));
  CHECK(support_for(list, cc("9.0")).support == Support::native);
  CHECK(support_for(list, cc("10.0")).support == Support::unsupported);
}

TEST_CASE("NVIDIA_REQUIRE_ARCH names exactly the GPUs an arch list serves", "[cc]") {
  CHECK(kiln::require_arch(*ArchList::parse("7.5;9.0+PTX")) == "arch>=7.5,arch<8.0 arch>=9.0,arch<10.0 arch>=9.0");
  kiln::ArchList a;
  a.sass.push_back(cc("sm_90a"));
  CHECK(kiln::require_arch(a) == "arch=9.0");
}
