# The demo's sample closure: no nixpkgs, no network. A "tool" whose output
# refers to a library and to a content-addressed file, and a two-output library.
{ salt ? "demo" }:
let
  sys = builtins.currentSystem;
  mk = name: script: extra: derivation ({
    inherit name;
    system = sys;
    builder = "/bin/sh";
    PATH = "/usr/bin:/bin";
    SALT = salt;
    args = [ "-c" script ];
  } // extra);
  motd = builtins.toFile "motd" "Hello from a bucket-backed Nix cache!\n";
  libgreet = mk "libgreet-1.0" ''
    mkdir -p $out/lib $dev/include
    head -c 300000 /dev/urandom > $out/lib/libgreet.so
    echo "#define GREET_LIB \"$out/lib/libgreet.so\"" > $dev/include/greet.h
  '' { outputs = [ "out" "dev" ]; };
in mk "greet-1.0" ''
  mkdir -p $out/bin $out/share
  cat > $out/bin/greet <<EOS
  #!/bin/sh
  cat ${motd}
  echo "linked against ${libgreet}/lib/libgreet.so (headers in ${libgreet.dev})"
  EOS
  chmod +x $out/bin/greet
  cp ${motd} $out/share/motd
'' { }
