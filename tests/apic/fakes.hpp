// The former names of the shared test fakes (tests/support/model_fakes.hpp), for the users
// outside the model test folders (tests/fuzz).
#pragma once

#include "tests/support/model_fakes.hpp"

namespace hv::apic::test {

using FakeNotifier = RecordingNotifier;
using RecordingPlatform = RoutingPlatform;

}  // namespace hv::apic::test
