module github.com/acme-shop/monorepo/services/mobile-bff

go 1.23
