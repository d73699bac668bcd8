// What a fuzz target does when something is wrong: a finding aborts (libFuzzer saves the input), a
// setup failure exits (not the input's fault).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>

namespace bff::fuzz {

// Exits the process with a message; a fuzzer's setup failing is not a finding.
[[noreturn]] inline void SetupFailed(const std::string& what) {
  std::fprintf(stderr, "fuzz fixture: %s\n", what.c_str());
  std::exit(2);
}

// Aborts (a finding libFuzzer reports with the input) with a message.
[[noreturn]] inline void Finding(const std::string& what) {
  std::fprintf(stderr, "FINDING: %s\n", what.c_str());
  std::abort();
}

// A target's fixture: built on first use (LLVMFuzzerInitialize) and never destroyed, so no input
// races a destructor at exit and the fixture's threads simply end with the process.
template <typename T>
T& Fixture() {
  static T* fixture = new T;
  return *fixture;
}

// BFF_FUZZ_TRACE=1 prints what each input got back (to check that seeds reach what they should).
inline bool Tracing() {
  static const bool on = std::getenv("BFF_FUZZ_TRACE") != nullptr;
  return on;
}

}  // namespace bff::fuzz
