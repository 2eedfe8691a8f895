
let
  drv = name: script: extra: derivation ({ inherit name; system = builtins.currentSystem;
    builder = "/bin/sh"; PATH = "/usr/bin:/bin"; args = [ "-c" script ]; } // extra);
in rec {
  note = builtins.toFile "store-test-note" "hello from the store test\n";
  dep = drv "store-test-dep" "echo dep > $out" {};
  self = drv "store-test-self" "mkdir $out; echo $out > $out/me" {};
  top = drv "store-test-top" "mkdir $out; ln -s ${dep} $out/dep; cat ${note} > $out/note; echo ${note} > $out/note-path" {};
  multi = drv "store-test-multi" "mkdir $out $dev; echo ${dep} > $out/d; echo $out > $dev/o" { outputs = [ "out" "dev" ]; };
  unbuilt = drv "store-test-unbuilt" "echo 664dccc01d2c0412 > $out" {};
  fresh = drv "store-test-fresh" "echo 664dccc01d2c0412 > $out" {};
  signed = drv "store-test-signed" "mkdir $out; echo 664dccc01d2c0412 > $out/signed; ln -s ${dep} $out/dep" {};
}
