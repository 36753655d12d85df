import { Button } from "@acme/design-system";

export default function Checkout() {
  return (
    <main>
      <h1>Checkout</h1>
      <Button onClick={() => fetch("/api/orders", { method: "POST" })}>Place order</Button>
    </main>
  );
}
