"""In-suite fakes of cloud services, reached by the official clients over 127.0.0.1."""
