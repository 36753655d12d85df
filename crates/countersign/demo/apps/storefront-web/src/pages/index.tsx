export default function Home() {
  return <main><h1>Acme Shop</h1></main>;
}
