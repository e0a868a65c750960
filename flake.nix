{
  # One reproducible description of everything interCEde needs: the development shell, the
  # library itself, the Slurm test-stack image (built from the SAME slurm-stack/ files the
  # Dockerfile uses), the e2e and debug-CE entry points, and the CI checks.
  # docs/nix.md says what of this has been exercised where.
  description = "interCEde: async, typed, bulk job submission to batch systems, with a sync facade for DIRAC";

  # A supported release branch (docs/nix.md says until when, and what was checked against it);
  # flake.lock pins the revision, refreshed weekly by .github/workflows/flake-lock.yml.
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";

  outputs =
    { self, nixpkgs }:
    let
      lib = nixpkgs.lib;
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: lib.genAttrs systems (system: f system nixpkgs.legacyPackages.${system});
      pyproject = lib.importTOML ./pyproject.toml;

      # ruff and mypy as `just lint` runs them: pyproject.toml's dev extra pins them (and mypy's
      # runtime dependencies), and nix/lint-tools.json (written by `python -m tools.lint_wheels`)
      # holds the same releases' PyPI wheels by name and hash. Evaluation stops if they disagree.
      lintTools = lib.importJSON ./nix/lint-tools.json;
      devPins = lib.listToAttrs (
        map (m: lib.nameValuePair (lib.elemAt m 0) (lib.elemAt m 1)) (
          lib.filter (m: m != null) (
            map (builtins.match "([A-Za-z0-9_.-]+)==([^;, ]+)") pyproject.project.optional-dependencies.dev
          )
        )
      );
      pinsAgree = lib.all (
        tool:
        lib.assertMsg (lintTools.versions.${tool} == (devPins.${tool} or "unpinned"))
          "nix/lint-tools.json has ${tool} ${lintTools.versions.${tool}} but pyproject.toml pins ${devPins.${tool} or "nothing"}: run python -m tools.lint_wheels"
      ) (lib.attrNames lintTools.versions);

      perSystem =
        system: pkgs:
        let
          python = pkgs.python313;

          # The pinned wheels, installed as Python packages (ruff's binary lands in bin/);
          # autoPatchelfHook points their compiled parts at nixpkgs' libc and libgcc.
          lintWheels = lib.mapAttrs (
            name: w:
            python.pkgs.buildPythonPackage {
              pname = name;
              inherit (w) version;
              format = "wheel";
              src = pkgs.fetchPypi {
                inherit (w)
                  pname
                  version
                  dist
                  python
                  abi
                  platform
                  hash
                  ;
                format = "wheel";
              };
              nativeBuildInputs = [ pkgs.autoPatchelfHook ];
              buildInputs = [ pkgs.stdenv.cc.cc.lib ];
              dependencies = map (dep: lintWheels.${dep} or python.pkgs.${dep}) lintTools.requires.${name};
            }
          ) lintTools.wheels.${system};

          # The library, built by hatchling from pyproject.toml; only what the wheel needs is
          # in its source, so editing tests or docs does not rebuild it.
          intercede = python.pkgs.buildPythonPackage {
            pname = pyproject.project.name;
            version = pyproject.project.version;
            pyproject = true;
            src = lib.fileset.toSource {
              root = ./.;
              fileset = lib.fileset.unions [
                ./pyproject.toml
                ./README.md
                ./LICENSE
                ./CHANGELOG.md
                ./src
              ];
            };
            build-system = [ python.pkgs.hatchling ];
            dependencies = with python.pkgs; [
              pydantic
              anyio
              asyncssh
              tenacity
              typing-extensions
              rich
            ];
            pythonImportsCheck = [ "intercede" ];
            meta = {
              description = pyproject.project.description;
              license = lib.licenses.gpl3Only;
              mainProgram = "intercede-debug-ce";
            };
          };

          # pyproject.toml's harness, dev and docs extras. types-docker and rust-just are not in
          # nixpkgs: mypy falls back to its docker.* ignore, and `just` comes from pkgs.just.
          # ruff and mypy are the pinned wheels above, not nixpkgs' (older) builds.
          devLibs =
            ps: with ps; [
              pydantic
              anyio
              asyncssh
              tenacity
              typing-extensions
              rich
              docker
              tomli-w
              pytest
              pytest-xdist
              pytest-timeout
              hypothesis
              trio
              hatchling
              packaging
              pyyaml
              mkdocs
              mkdocs-material
              mkdocstrings
              mkdocstrings-python
            ];
          # Everything above plus the library built here (its metadata gives __version__; in
          # the dev shell the checkout's src/ comes first on PYTHONPATH).
          runPython = python.withPackages (
            ps:
            devLibs ps
            ++ [
              intercede
              lintWheels.ruff
              lintWheels.mypy
            ]
          );

          # Every program the Justfile recipes, tools/debian-deps.sh and the tests call, so
          # nothing is installed from Debian under Nix (debian-deps.sh finds them on PATH).
          tools = [
            pkgs.just
            pkgs.docker-client
            pkgs.slurm
            pkgs.actionlint
            pkgs.shellcheck
            pkgs.nix # nix-instantiate, for tests/unit/test_flake.py
            pkgs.openssh # ssh, ssh-keygen
            pkgs.git
            pkgs.debootstrap
          ];

          # ---------------------------------------------------------------- stack image
          # Same role-parameterised entrypoint and health check as slurm-stack/Dockerfile; the
          # Slurm configs are rendered on the host by the harness from slurm-stack/*.tmpl and
          # mounted at /etc/intercede, exactly as for the Dockerfile image. Only the package
          # source differs: nixpkgs' Slurm, munge and MariaDB instead of Debian's.
          stackRoot = pkgs.buildEnv {
            name = "intercede-slurm-stack-root";
            paths = with pkgs; [
              bashInteractive
              coreutils
              findutils
              gnugrep
              gnused
              gawk
              util-linux # runuser
              procps
              iproute2
              getent
              hostname
              less
              which
              munge
              slurm
              mariadb # the server build includes the client tools (mariadb-admin)
              openssh
              python3
              cacert
            ];
            # procps and util-linux both ship kill(1) and friends; either will do.
            ignoreCollisions = true;
            pathsToLink = [
              "/bin"
              "/sbin"
              "/libexec"
              "/share"
            ];
          };

          etcFiles = pkgs.runCommand "intercede-slurm-stack-etc" { } ''
            mkdir -p $out/etc/ssh
            cat > $out/etc/passwd <<'EOF'
            root:x:0:0:root:/root:/bin/bash
            munge:x:101:101:munge:/var/lib/munge:/bin/false
            mysql:x:102:102:MariaDB:/var/lib/mysql:/bin/false
            sshd:x:103:65534:sshd privilege separation:/var/empty:/bin/false
            slurm:x:64030:64030:Slurm:/var/lib/slurm:/bin/false
            submit:x:2000:2000:interCEde submit user:/home/submit:/bin/bash
            nobody:x:65534:65534:nobody:/nonexistent:/bin/false
            EOF
            cat > $out/etc/group <<'EOF'
            root:x:0:
            munge:x:101:
            mysql:x:102:
            slurm:x:64030:
            submit:x:2000:
            nogroup:x:65534:
            EOF
            # '*': no password, but not locked, so key authentication works (as in the Dockerfile).
            cut -d: -f1 $out/etc/passwd | sed 's/$/:*:19000:0:99999:7:::/' > $out/etc/shadow
            chmod 0640 $out/etc/shadow
            printf 'passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n' > $out/etc/nsswitch.conf
            # Debian's sshd_config includes sshd_config.d/ first; the entrypoint writes its
            # settings there. No PAM in this image; sftp for the SSH transport's file staging.
            cat > $out/etc/ssh/sshd_config <<EOF
            Include /etc/ssh/sshd_config.d/*.conf
            UsePAM no
            Subsystem sftp ${pkgs.openssh}/libexec/sftp-server
            SetEnv PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin
            EOF
            echo "slurm ${pkgs.slurm.version}" > $out/etc/intercede-slurm-version
          '';

          slurmStackImage = pkgs.dockerTools.buildLayeredImage {
            name = "intercede-slurm-stack";
            tag = "nix-${pkgs.slurm.version}";
            contents = [
              stackRoot
              etcFiles
            ];
            extraCommands = ''
              mkdir -p usr/local/bin usr/sbin tmp root home/submit var/empty run \
                var/lib/slurm/slurmctld var/lib/slurm/slurmd var/log/slurm run/slurm \
                run/sshd run/munge var/lib/munge var/log/munge var/lib/mysql etc/slurm
              chmod 1777 tmp
              ln -s /run var/run
              ln -s ../bin usr/bin
              # The entrypoint calls these by their Debian paths.
              ln -s ${pkgs.munge}/bin/munged usr/sbin/munged
              ln -s ${pkgs.openssh}/bin/sshd usr/sbin/sshd
              install -m 0755 ${./slurm-stack/entrypoint.sh} usr/local/bin/entrypoint.sh
              install -m 0755 ${./slurm-stack/healthcheck.sh} usr/local/bin/healthcheck.sh
            '';
            enableFakechroot = true;
            fakeRootCommands = ''
              chown -R 64030:64030 /var/lib/slurm /var/log/slurm /run/slurm
              chown 101:101 /run/munge /var/lib/munge /var/log/munge
              chown 102:102 /var/lib/mysql
              chown 2000:2000 /home/submit
            '';
            config = {
              Entrypoint = [ "/usr/local/bin/entrypoint.sh" ];
              Env = [
                "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
                "LANG=C.UTF-8"
                "SSL_CERT_FILE=/etc/ssl/certs/ca-bundle.crt"
              ];
              # Same probe and timings as the Dockerfile's HEALTHCHECK (durations in ns).
              Healthcheck = {
                Test = [
                  "CMD"
                  "/usr/local/bin/healthcheck.sh"
                ];
                Interval = 1000000000;
                Timeout = 10000000000;
                StartPeriod = 120000000000;
                Retries = 5;
              };
            };
          };

          imageRef = "${slurmStackImage.imageName}:${slurmStackImage.imageTag}";

          # `nix run .#e2e`: load the Nix-built image into the engine the harness uses, then the
          # same flow as `just e2e`, told (INTERCEDE_STACK_IMAGE) to use that image, not the Dockerfile.
          e2e = pkgs.writeShellApplication {
            name = "intercede-e2e";
            runtimeInputs = [ runPython ] ++ tools;
            text = ''
              if [ ! -f Justfile ] || [ ! -d harness ]; then
                echo "run this from an interCEde checkout (it writes state under .intercede/)" >&2
                exit 2
              fi
              # Start or find the engine first, so docker load talks to the same one.
              DOCKER_HOST="$(python -c 'from harness.engine import ensure_engine; print(ensure_engine().host)')"
              export DOCKER_HOST
              docker load --input ${slurmStackImage}
              # The harness's Cluster takes INTERCEDE_STACK_IMAGE as --image: skip the build.
              export INTERCEDE_STACK_IMAGE=${imageRef}
              exec just e2e "$@"
            '';
          };

          debugCe = pkgs.writeShellApplication {
            name = "intercede-debug-ce";
            runtimeInputs = [ runPython ];
            text = ''
              exec python -m intercede._cli.debug_ce "$@"
            '';
          };

          # Checks run on a writable copy of the flake's source (the git-tracked files).
          check =
            name: script:
            pkgs.runCommand "intercede-${name}"
              {
                nativeBuildInputs = [ runPython ] ++ tools;
              }
              ''
                cp -r ${self} source
                chmod -R u+w source
                cd source
                export HOME="$TMPDIR" NIX_STATE_DIR="$TMPDIR/nix" NIX_LOG_DIR="$TMPDIR/nix-log"
                export PYTHONPATH="$PWD/src"
                ${script}
                touch $out
              '';
        in
        {
          packages = {
            default = intercede;
            intercede = intercede;
            slurm-stack-image = slurmStackImage;
          };

          apps = {
            e2e = {
              type = "app";
              program = lib.getExe e2e;
            };
            debug-ce = {
              type = "app";
              program = lib.getExe debugCe;
            };
          };

          devShells.default = pkgs.mkShell {
            packages = [ runPython ] ++ tools;
            shellHook = ''
              # Work on the checkout, not a store copy: src/ and the repo root on sys.path.
              export PYTHONPATH="$PWD/src:$PWD''${PYTHONPATH:+:$PYTHONPATH}"
            '';
          };

          checks = {
            package = intercede;
            # test_dirac_drift.py probes the pinned DIRAC in .venv-dirac, which needs PyPI: the
            # sandbox has no network, so it runs in ci.yml's unit job, not here.
            unit = check "unit" "python -m pytest tests/unit -q -p no:cacheprovider --ignore=tests/unit/test_dirac_drift.py";
            lint = check "lint" ''
              ruff check src harness tests benchmarks tools docs/examples
              ruff format --check src harness tests benchmarks tools docs/examples
              mypy
              shellcheck --shell=sh src/intercede/_batch/*.sh
            '';
            generated = check "generated" ''
              python -m tools.gen_sync --check
              python -m tools.gen_config_reference --check
              python -m tools.lint_wheels --check
            '';
          };
        };

      all = assert pinsAgree; forAllSystems perSystem;
    in
    {
      packages = lib.mapAttrs (_: s: s.packages) all;
      apps = lib.mapAttrs (_: s: s.apps) all;
      devShells = lib.mapAttrs (_: s: s.devShells) all;
      checks = lib.mapAttrs (_: s: s.checks) all;
    };
}
