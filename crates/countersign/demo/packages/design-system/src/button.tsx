import type { ReactNode } from "react";

export function Button({ children, onClick }: { children: ReactNode; onClick?: () => void }) {
  return <button className="acme-button" onClick={onClick}>{children}</button>;
}
