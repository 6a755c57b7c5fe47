// SPDX-License-Identifier: Apache-2.0
// collector::IpfixStreamFramer: RFC 7011 §10.4 message framing on a byte stream.
#include <gtest/gtest.h>

#include <cstdint>
#include <span>
#include <vector>

#include "collector/ipfix_stream_framer.hpp"

namespace flowd::collector {
namespace {

using Bytes = std::vector<std::uint8_t>;
using Status = IpfixStreamFramer::Status;

// An IPFIX message of `length` bytes (>= 16) whose body bytes are `fill`.
Bytes message(std::size_t length, std::uint8_t fill, std::uint16_t version = 10) {
  Bytes m(length, fill);
  m[0] = static_cast<std::uint8_t>(version >> 8);
  m[1] = static_cast<std::uint8_t>(version);
  m[2] = static_cast<std::uint8_t>(length >> 8);
  m[3] = static_cast<std::uint8_t>(length);
  return m;
}

Bytes concat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

struct Collect {
  std::vector<Bytes> messages;
  void operator()(std::span<const std::uint8_t> m) { messages.emplace_back(m.begin(), m.end()); }
};

TEST(IpfixStreamFramer, SeveralMessagesInOneRead) {
  const Bytes a = message(16, 0xA1), b = message(40, 0xB2), c = message(100, 0xC3);
  IpfixStreamFramer f;
  Collect got;
  EXPECT_EQ(f.feed(concat({a, b, c}), std::ref(got)), Status::kOk);
  ASSERT_EQ(got.messages.size(), 3u);
  EXPECT_EQ(got.messages[0], a);
  EXPECT_EQ(got.messages[1], b);
  EXPECT_EQ(got.messages[2], c);
  EXPECT_EQ(f.buffered(), 0u);
}

// Every way of cutting a three-message stream in two (and then in byte-sized reads) gives the same
// messages: a cut inside a header, a body, or exactly on a boundary.
TEST(IpfixStreamFramer, MessagesSplitAcrossReadsAtEveryByte) {
  const Bytes a = message(20, 0x11), b = message(16, 0x22), c = message(33, 0x33);
  const Bytes stream = concat({a, b, c});
  for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
    IpfixStreamFramer f;
    Collect got;
    const std::span<const std::uint8_t> s(stream);
    EXPECT_EQ(f.feed(s.first(cut), std::ref(got)), Status::kOk);
    EXPECT_EQ(f.feed(s.subspan(cut), std::ref(got)), Status::kOk);
    ASSERT_EQ(got.messages.size(), 3u) << "cut at " << cut;
    EXPECT_EQ(got.messages[0], a) << "cut at " << cut;
    EXPECT_EQ(got.messages[1], b) << "cut at " << cut;
    EXPECT_EQ(got.messages[2], c) << "cut at " << cut;
    EXPECT_EQ(f.buffered(), 0u);
  }
  IpfixStreamFramer f;
  Collect got;
  for (std::uint8_t byte : stream)
    EXPECT_EQ(f.feed(std::span<const std::uint8_t>(&byte, 1), std::ref(got)), Status::kOk);
  ASSERT_EQ(got.messages.size(), 3u);
  EXPECT_EQ(got.messages[2], c);
}

TEST(IpfixStreamFramer, PartialMessageWaits) {
  const Bytes a = message(64, 0x44);
  IpfixStreamFramer f;
  Collect got;
  EXPECT_EQ(f.feed(std::span<const std::uint8_t>(a).first(63), std::ref(got)), Status::kOk);
  EXPECT_TRUE(got.messages.empty());
  EXPECT_EQ(f.buffered(), 63u);
  EXPECT_EQ(f.feed(std::span<const std::uint8_t>(a).subspan(63), std::ref(got)), Status::kOk);
  ASSERT_EQ(got.messages.size(), 1u);
  EXPECT_EQ(got.messages[0], a);
}

TEST(IpfixStreamFramer, BadVersionIsOutOfSync) {
  const Bytes good = message(20, 0x55), v9 = message(20, 0x66, 9);
  IpfixStreamFramer f;
  Collect got;
  EXPECT_EQ(f.feed(concat({good, v9}), std::ref(got)), Status::kOutOfSync);
  ASSERT_EQ(got.messages.size(), 1u);  // what came before the bad header still counts
  EXPECT_TRUE(f.out_of_sync());
  EXPECT_EQ(Bytes(f.unframed().begin(), f.unframed().end()), v9);
  // Out of sync stays out of sync: a good message after it is not trusted.
  EXPECT_EQ(f.feed(good, std::ref(got)), Status::kOutOfSync);
  EXPECT_EQ(got.messages.size(), 1u);
  f.reset();
  EXPECT_EQ(f.feed(good, std::ref(got)), Status::kOk);
  EXPECT_EQ(got.messages.size(), 2u);
}

// A length below the header's own 16 bytes cannot delimit anything, also when the bad header
// arrives in pieces.
TEST(IpfixStreamFramer, LengthBelowHeaderIsOutOfSync) {
  for (std::size_t length : {0u, 1u, 15u}) {
    Bytes bad = message(16, 0x77);
    bad[2] = 0;
    bad[3] = static_cast<std::uint8_t>(length);
    IpfixStreamFramer f;
    Collect got;
    EXPECT_EQ(f.feed(std::span<const std::uint8_t>(bad).first(3), std::ref(got)), Status::kOk);
    EXPECT_EQ(f.feed(std::span<const std::uint8_t>(bad).subspan(3), std::ref(got)),
              Status::kOutOfSync);
    EXPECT_TRUE(got.messages.empty());
    EXPECT_EQ(f.unframed().size(), 16u);
  }
}

// The largest length the header can state (65535) is waited for, and never more than one message
// (less its last byte) is buffered, however the stream is cut.
TEST(IpfixStreamFramer, HugeLengthIsBufferedWithinOneMessage) {
  const Bytes big = message(IpfixStreamFramer::kMaxMessage, 0x88), small = message(16, 0x99);
  const Bytes stream = concat({big, small, big});
  IpfixStreamFramer f;
  Collect got;
  std::size_t most = 0;
  const std::span<const std::uint8_t> s(stream);
  for (std::size_t off = 0; off < s.size(); off += 1000) {
    EXPECT_EQ(f.feed(s.subspan(off, std::min<std::size_t>(1000, s.size() - off)), std::ref(got)),
              Status::kOk);
    most = std::max(most, f.buffered());
  }
  ASSERT_EQ(got.messages.size(), 3u);
  EXPECT_EQ(got.messages[0], big);
  EXPECT_EQ(got.messages[1], small);
  EXPECT_EQ(got.messages[2], big);
  EXPECT_LT(most, IpfixStreamFramer::kMaxMessage);
  EXPECT_EQ(f.buffered(), 0u);
}

}  // namespace
}  // namespace flowd::collector
