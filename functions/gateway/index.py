"""FC entry point of the gateway function: s.yaml's customRuntimeConfig command runs this file.

The web server (uvicorn, uvloop + httptools) listens on 0.0.0.0:$FC_SERVER_PORT (9000) and serves
the HTTP trigger and FC's health checks until FC stops the instance.
"""

from shared.gateway.server import main

if __name__ == "__main__":
    main()
