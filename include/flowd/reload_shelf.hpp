// SPDX-License-Identifier: Apache-2.0
// ReloadShelf: where a component that is stopped by a reload leaves a resource for the instance
// that replaces it — np_api leaves its named pipe open, so that writers never find the path missing
// (an `echo … > path` in the gap would create a regular file) and the bytes already in the pipe are
// read by the successor instead of being lost (issue 13).
//
// Lifecycle: stop() of the old instance puts an item; start() of the new one takes it by key. The
// runtime destroys whatever nobody took once a configuration has been applied (the component left
// the configuration, or its key changed) and when the daemon stops, so an item's destructor is its
// clean-up (close the descriptor, remove the pipe). Called on the core's threads only (start/stop);
// internally locked all the same.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace flowd {

class ShelfItem {
 public:
  virtual ~ShelfItem() = default;
};

class ReloadShelf {
 public:
  // Replaces (destroys) an item already under `key`.
  void put(const std::string& key, std::unique_ptr<ShelfItem> item) {
    std::unique_ptr<ShelfItem> old;
    std::lock_guard lock(mu_);
    auto& slot = items_[key];
    old = std::move(slot);
    slot = std::move(item);
  }
  // The item under `key`, or null; the caller owns it afterwards.
  std::unique_ptr<ShelfItem> take(const std::string& key) {
    std::lock_guard lock(mu_);
    auto it = items_.find(key);
    if (it == items_.end()) return nullptr;
    auto item = std::move(it->second);
    items_.erase(it);
    return item;
  }
  // Destroys every item nobody took.
  void clear() {
    std::map<std::string, std::unique_ptr<ShelfItem>> gone;
    {
      std::lock_guard lock(mu_);
      gone.swap(items_);
    }
  }
  std::size_t size() const {
    std::lock_guard lock(mu_);
    return items_.size();
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<ShelfItem>> items_;
};

}  // namespace flowd
