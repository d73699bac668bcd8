// process_* metrics from /proc/self/stat, /proc/self/fd and /proc/stat.
#include "observability/process_metrics.h"

#include <dirent.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

namespace bff {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Fields of /proc/self/stat after the command name, which is in parentheses and may hold spaces.
std::vector<std::string> StatFields() {
  std::ifstream in("/proc/self/stat");
  std::string line;
  if (!std::getline(in, line)) return {};
  size_t close = line.rfind(')');
  if (close == std::string::npos) return {};
  std::istringstream rest(line.substr(close + 1));
  std::vector<std::string> fields;
  std::string f;
  while (rest >> f) fields.push_back(f);
  return fields;
}

// Boot time (unix seconds) from the btime line of /proc/stat.
double BootTime() {
  std::ifstream in("/proc/stat");
  std::string key;
  while (in >> key) {
    if (key == "btime") {
      double t = 0;
      in >> t;
      return t;
    }
    in.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
  }
  return kNaN;
}

double OpenFds() {
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) return kNaN;
  double n = 0;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] != '.') ++n;
  }
  closedir(dir);
  return n - 1;  // the descriptor opendir itself holds
}

}  // namespace

std::optional<ProcessStats> ReadProcessStats() {
  std::vector<std::string> f = StatFields();
  // After the name: state is field 3 of proc(5), so field N is f[N - 3].
  if (f.size() < 22) return std::nullopt;
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  ProcessStats s;
  s.cpu_seconds = (std::stod(f[14 - 3]) + std::stod(f[15 - 3])) / ticks;  // utime + stime
  s.resident_bytes = std::stod(f[24 - 3]) * page;                          // rss, in pages
  s.start_time_seconds = BootTime() + std::stod(f[22 - 3]) / ticks;        // starttime, ticks after boot
  s.open_fds = OpenFds();
  return s;
}

void RegisterProcessMetrics(MetricsRegistry& registry) {
  // The start time never changes: read it once rather than at every scrape.
  auto first = ReadProcessStats();
  const double start = first ? first->start_time_seconds : kNaN;
  registry.GaugeCallback("process_resident_memory_bytes", "Resident memory size in bytes.", [] {
    auto s = ReadProcessStats();
    return s ? s->resident_bytes : kNaN;
  });
  registry.GaugeCallback("process_open_fds", "Number of open file descriptors.", [] { return OpenFds(); });
  registry.CounterCallback("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", [] {
    auto s = ReadProcessStats();
    return s ? s->cpu_seconds : kNaN;
  });
  registry.GaugeCallback("process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
                         [start] { return start; });
}

}  // namespace bff
