// `hvaccel disk info FILE [--format raw|qcow2]`: open a disk image as a VM would and describe it.
// `hvaccel disk snapshot FILE list|create NAME|apply NAME|delete NAME`: internal snapshots.
#pragma once

int cmd_disk(int argc, char** argv);
