listen = "127.0.0.1:18080"

consul {
  address = "127.0.0.1:18500"
}
