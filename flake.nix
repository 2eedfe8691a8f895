{
  description = "nixbucket: Nix binary caches and releases in an S3 bucket";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" "x86_64-darwin" "aarch64-darwin" ];
      forAll = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
      version = self.shortRev or self.dirtyShortRev or "dev";
    in {
      packages = forAll (pkgs: rec {
        nixbucket = pkgs.buildGoModule {
          pname = "nixbucket";
          inherit version;
          src = ./.;
          # The NAR hash of `go mod vendor`'s output. After a go.mod or go.sum
          # change, TestFlakeVendorHash (cmd/nixbucket/flake_test.go) fails and
          # prints the new value (or: go mod vendor -o DIR && nix hash path DIR).
          vendorHash = "sha256-g9ipKCgp2A+P5ne92wCu4dVV0UW02yz4xuRneOM2jQI=";
          subPackages = [ "cmd/nixbucket" ];
          env.CGO_ENABLED = 0;
          ldflags = [ "-s" "-w" "-X main.version=${version}" ];
          # The suite needs real S3 servers and a writable Nix store: run it with `make test`.
          doCheck = false;
          meta = {
            description = "Push Nix closures to S3 binary caches, garbage-collect them, publish releases";
            mainProgram = "nixbucket";
          };
        };
        default = nixbucket;
      });

      devShells = forAll (pkgs: {
        default = pkgs.mkShell {
          packages = with pkgs; [ go gopls gotools go-tools nix skopeo chromium minio versitygw ];
        };
      });
    };
}
