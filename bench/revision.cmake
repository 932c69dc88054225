# Writes OUT (a header defining HV_REVISION) from `git describe` of SRC, only when the text
# changes, so a build after a commit records the new revision without rebuilding the rest.
# Run by the hv_revision target (cmd/CMakeLists.txt) on every build:
#   cmake -DSRC=<source dir> -DOUT=<header> -P bench/revision.cmake
set(rev "unknown")
find_package(Git QUIET)
if(GIT_FOUND)
  execute_process(COMMAND ${GIT_EXECUTABLE} -C ${SRC} describe --always --dirty --abbrev=12
                  OUTPUT_VARIABLE out OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET
                  RESULT_VARIABLE rc)
  if(rc EQUAL 0 AND NOT out STREQUAL "")
    set(rev "${out}")
  endif()
endif()
set(text "#define HV_REVISION \"${rev}\"\n")
if(EXISTS ${OUT})
  file(READ ${OUT} old)
endif()
if(NOT "${old}" STREQUAL "${text}")
  file(WRITE ${OUT} "${text}")
endif()
