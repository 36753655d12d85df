import { Button } from "@acme/design-system";

export default function SignIn() {
  return (
    <form method="post" action="/api/oauth/token">
      <input name="email" type="email" autoComplete="username" />
      <input name="password" type="password" autoComplete="current-password" />
      <Button>Sign in</Button>
    </form>
  );
}
