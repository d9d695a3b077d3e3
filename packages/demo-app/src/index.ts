export { newCaptchaCode, type RandomInt, renderCaptchaSvg } from './captcha.ts';
export { clientAddress, parseTrustedProxies } from './client-address.ts';
export { createDemoApp, DEMO_SECRET, type DemoAppOptions } from './demo-app.ts';
export { escapeHtml, type HomePageModel, renderHomePage } from './home-page.ts';
export { LoginThrottle, type LoginThrottleOptions } from './login-throttle.ts';
export { downloadByteAt, MAX_DOWNLOAD_BYTES, MAX_DOWNLOAD_RATE, MAX_ECHO_PAYLOAD, MIN_DOWNLOAD_RATE } from './long-lived.ts';
export { type RunningDemoApp, type StartDemoAppOptions, startDemoApp } from './start-demo-app.ts';
