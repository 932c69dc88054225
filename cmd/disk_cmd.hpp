// `hvaccel disk info FILE [--format raw|qcow2]`: open a disk image as a VM would and describe it.
#pragma once

int cmd_disk(int argc, char** argv);
