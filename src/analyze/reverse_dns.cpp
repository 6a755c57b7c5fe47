// SPDX-License-Identifier: Apache-2.0
#include "analyze/reverse_dns.hpp"

#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

namespace flowd::analyze {
namespace {

using Steady = std::chrono::steady_clock;

std::string key_of(const IpAddress& a) {
  std::string k(1 + a.bytes.size(), '\0');
  k[0] = static_cast<char>(a.family);
  std::memcpy(k.data() + 1, a.bytes.data(), a.bytes.size());
  return k;
}

std::optional<std::string> lookup(const IpAddress& a) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (a.is_v4()) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
    sin->sin_family = AF_INET;
    std::memcpy(&sin->sin_addr, a.bytes.data(), 4);
    len = sizeof(sockaddr_in);
  } else if (a.is_v6()) {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
    sin6->sin6_family = AF_INET6;
    std::memcpy(&sin6->sin6_addr, a.bytes.data(), 16);
    len = sizeof(sockaddr_in6);
  } else {
    return std::nullopt;
  }
  char host[NI_MAXHOST];
  if (getnameinfo(reinterpret_cast<sockaddr*>(&ss), len, host, sizeof host, nullptr, 0,
                  NI_NAMEREQD) != 0)
    return std::nullopt;
  return std::string(host);
}

}  // namespace

struct ReverseDns::Shared {
  enum class State : std::uint8_t { kQueued, kRunning, kDone };
  struct Entry {
    State state = State::kQueued;
    std::optional<std::string> name;
    Steady::time_point deadline;
  };

  ReverseDnsOptions options;
  std::mutex mu;
  std::condition_variable work, done;
  std::unordered_map<std::string, Entry> cache;
  std::deque<std::pair<std::string, IpAddress>> queue;
  std::vector<std::thread> threads;
  std::vector<bool> busy;  // per thread: inside getnameinfo
  bool stopping = false;
  ReverseDnsCounters counters;

  static void run(std::shared_ptr<Shared> self, std::size_t index) {
    std::unique_lock lock(self->mu);
    for (;;) {
      self->work.wait(lock, [&] { return self->stopping || !self->queue.empty(); });
      if (self->stopping) return;
      auto [key, address] = std::move(self->queue.front());
      self->queue.pop_front();
      Entry& e = self->cache[key];
      if (Steady::now() > e.deadline) {
        // Nobody waits any more: leave it unnamed rather than spend a worker on it.
        e.state = State::kDone;
        self->done.notify_all();
        continue;
      }
      e.state = State::kRunning;
      ++self->counters.lookups;
      self->busy[index] = true;
      lock.unlock();
      auto name = lookup(address);
      lock.lock();
      self->busy[index] = false;
      Entry& after = self->cache[key];
      after.name = std::move(name);
      after.state = State::kDone;
      if (after.name) ++self->counters.names;
      self->done.notify_all();
    }
  }
};

ReverseDns::ReverseDns(ReverseDnsOptions options) : shared_(std::make_shared<Shared>()) {
  if (options.threads == 0) options.threads = 1;
  shared_->options = options;
}

ReverseDns::~ReverseDns() {
  std::vector<bool> busy;
  {
    std::lock_guard lock(shared_->mu);
    shared_->stopping = true;
    busy = shared_->busy;
  }
  shared_->work.notify_all();
  // An idle worker returns at once; one blocked in getnameinfo is left to finish on its own.
  for (std::size_t i = 0; i < shared_->threads.size(); ++i) {
    if (busy[i])
      shared_->threads[i].detach();
    else
      shared_->threads[i].join();
  }
}

void ReverseDns::prefetch(const IpAddress& address) {
  std::string key = key_of(address);
  std::lock_guard lock(shared_->mu);
  Shared& s = *shared_;
  if (s.cache.contains(key)) return;
  if (s.cache.size() >= s.options.max_cache) {
    ++s.counters.not_asked;
    return;
  }
  s.cache[key].deadline = Steady::now() + s.options.timeout;
  s.queue.emplace_back(std::move(key), address);
  if (s.threads.size() < s.options.threads) {
    s.busy.push_back(false);
    s.threads.emplace_back(&Shared::run, shared_, s.threads.size());
  }
  s.work.notify_one();
}

std::optional<std::string> ReverseDns::name(const IpAddress& address) {
  prefetch(address);
  const std::string key = key_of(address);
  std::unique_lock lock(shared_->mu);
  auto it = shared_->cache.find(key);
  if (it == shared_->cache.end()) return std::nullopt;  // the cache was full
  const auto deadline = it->second.deadline;
  const bool finished = shared_->done.wait_until(
      lock, deadline, [&] { return shared_->cache[key].state == Shared::State::kDone; });
  if (!finished) {
    ++shared_->counters.timeouts;
    return std::nullopt;
  }
  return shared_->cache[key].name;
}

ReverseDnsCounters ReverseDns::counters() const {
  std::lock_guard lock(shared_->mu);
  return shared_->counters;
}

}  // namespace flowd::analyze
