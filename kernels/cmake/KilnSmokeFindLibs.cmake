# Finds cuDNN and NCCL where CUDA images and hosts put them:
#   -DCUDNN_ROOT / -DNCCL_ROOT (or the same environment variables) first,
#   then the CUDA toolkit (/usr/local/cuda, CUDAToolkit_LIBRARY_ROOT),
#   Debian/Ubuntu multiarch (/usr/include, /usr/lib/x86_64-linux-gnu),
#   and pip's nvidia wheels (site-packages/nvidia/{cudnn,nccl}/{include,lib}).
# pip wheels ship only versioned sonames (libcudnn.so.9, libnccl.so.2), so
# those names are searched for as well.
#
# Sets KILN_CUDNN_FOUND / KILN_NCCL_FOUND and imported targets kiln::cudnn,
# kiln::nccl.

# site-packages of the python3 on PATH, plus any the caller names.
set(KILN_PYTHON_SITE "" CACHE STRING "extra site-packages directories to search for nvidia/* wheels")
set(_kiln_sites ${KILN_PYTHON_SITE})
find_program(KILN_PYTHON3 NAMES python3 python)
if(KILN_PYTHON3)
  execute_process(
    COMMAND "${KILN_PYTHON3}" -c "import site,sysconfig;print(';'.join(dict.fromkeys([sysconfig.get_paths()['purelib'],sysconfig.get_paths()['platlib']]+site.getsitepackages())))"
    OUTPUT_VARIABLE _py_sites OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE _py_rc)
  if(_py_rc EQUAL 0)
    list(APPEND _kiln_sites ${_py_sites})
  endif()
endif()

set(_kiln_cuda_roots)
if(CUDAToolkit_LIBRARY_ROOT)
  list(APPEND _kiln_cuda_roots "${CUDAToolkit_LIBRARY_ROOT}")
endif()
if(CUDAToolkit_INCLUDE_DIRS)
  foreach(_d IN LISTS CUDAToolkit_INCLUDE_DIRS)
    get_filename_component(_p "${_d}" DIRECTORY)
    list(APPEND _kiln_cuda_roots "${_p}")
  endforeach()
endif()
list(APPEND _kiln_cuda_roots /usr/local/cuda)

# kiln_find_cuda_lib(NAME HEADER LIBNAMES... ) -> KILN_<NAME>_FOUND, kiln::<name>
function(kiln_find_cuda_lib name header)
  string(TOUPPER "${name}" up)
  string(TOLOWER "${name}" low)
  set(hints ${${up}_ROOT} $ENV{${up}_ROOT})
  foreach(site IN LISTS _kiln_sites)
    list(APPEND hints "${site}/nvidia/${low}" "${site}/nvidia/cu13" "${site}/nvidia/cu12")
  endforeach()
  list(APPEND hints ${_kiln_cuda_roots} /usr /usr/local)
  find_path(${up}_INCLUDE_DIR ${header} HINTS ${hints}
            PATH_SUFFIXES include include/x86_64-linux-gnu NO_DEFAULT_PATH)
  find_path(${up}_INCLUDE_DIR ${header})
  # NAMES_PER_DIR: the first hint directory holding any of the names wins, so
  # a pip wheel named by -D<LIB>_ROOT (libcudnn.so.9 only) beats a system
  # libcudnn.so found later in the list.
  find_library(${up}_LIBRARY NAMES ${ARGN} NAMES_PER_DIR HINTS ${hints}
               PATH_SUFFIXES lib lib64 lib/x86_64-linux-gnu targets/x86_64-linux/lib NO_DEFAULT_PATH)
  find_library(${up}_LIBRARY NAMES ${ARGN})
  if(${up}_INCLUDE_DIR AND ${up}_LIBRARY)
    set(KILN_${up}_FOUND TRUE PARENT_SCOPE)
    if(NOT TARGET kiln::${low})
      add_library(kiln::${low} UNKNOWN IMPORTED)
      set_target_properties(kiln::${low} PROPERTIES
        IMPORTED_LOCATION "${${up}_LIBRARY}"
        INTERFACE_INCLUDE_DIRECTORIES "${${up}_INCLUDE_DIR}")
    endif()
    message(STATUS "kiln-smoke: ${name}: ${${up}_LIBRARY} (headers ${${up}_INCLUDE_DIR})")
  else()
    set(KILN_${up}_FOUND FALSE PARENT_SCOPE)
    message(STATUS "kiln-smoke: ${name} not found (section reports absent); hint with -D${up}_ROOT=")
  endif()
endfunction()

kiln_find_cuda_lib(cuDNN cudnn.h cudnn libcudnn.so.9 libcudnn.so.8)
kiln_find_cuda_lib(NCCL nccl.h nccl libnccl.so.2)
